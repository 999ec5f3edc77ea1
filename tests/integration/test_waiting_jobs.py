"""What a job every route refuses does, through a real worker: it fails at once when its routes
cannot heal by themselves (a wrong URL), and waits, saying for what, when they can (Retry-After)."""

from __future__ import annotations

import time
import uuid

import pytest

from ops.simulator.server import free_port
from routing.errors import ErrorClass, JobTimeout
from routing.models import JobState, Waiting
from tests.integration.conftest import Stack, tear_down
from tests.integration.harness import Sim, Worker, stack_env, write_config


@pytest.fixture(scope="module")
def stack(redis_url, tmp_path_factory):
    """'primary' points at a port where nothing listens; 'secondary' is a simulator."""
    directory = tmp_path_factory.mktemp("waiting")
    namespace = f"t-{uuid.uuid4().hex[:10]}"
    primary = Sim("primary", key=f"sim-primary-{uuid.uuid4().hex}")
    secondary = Sim("secondary", key=f"sim-secondary-{uuid.uuid4().hex}")
    wrong = f"http://127.0.0.1:{free_port()}/v1"
    config = write_config(
        directory / "turnout.yaml",
        [primary, secondary],
        breaker={
            "consecutive_failures": 2,
            "cooldown_s": 5,
            "cooldown_max_s": 10,
            "cooldown_jitter": 0,
        },
        deployments={"primary": {"base_url": wrong}},
    )
    env = stack_env(redis_url, namespace, config, [primary, secondary])
    running = Stack(
        namespace,
        env,
        config,
        primary,
        secondary,
        Worker(env, directory / "worker.log").start(),
        redis_url,
    )
    yield running
    tear_down(running)


def test_a_job_against_a_wrong_url_fails_at_once_naming_its_address(stack):
    policy = {"targets": ["primary"], "retries_per_target": 3, "deadline_s": 8}
    started = time.monotonic()
    with stack.client() as client:
        result = client.submit("hello?", policy=policy).wait(60)
    assert time.monotonic() - started < 3, "not a wait for the breaker's 5 s cool-down"
    assert result.state is JobState.FAILED
    assert result.error is not None
    assert result.error.error_class is ErrorClass.ALL_UNAVAILABLE
    assert "primary: open (2 consecutive failures)" in result.error.message
    assert "connection refused at 127.0.0.1:" in result.error.message
    assert stack.primary.key not in result.error.message
    calls = [a for a in result.attempts if a.outcome != "skipped"]
    assert [a.outcome for a in calls] == ["connection", "connection"]
    assert all("connection refused at 127.0.0.1:" in (a.message or "") for a in calls)
    assert result.waiting is None


def test_a_job_behind_a_retry_after_waits_and_says_until_when(stack):
    stack.secondary.set_faults(fail_rate=1.0, fail_status=429, retry_after_s=4)
    policy = {"targets": ["secondary"], "retries_per_target": 2, "deadline_s": 8}
    heard: list[Waiting] = []
    with stack.client() as client:
        handle = client.submit("later, then", policy=policy)
        with pytest.raises(JobTimeout) as caught:
            handle.wait(2.5, on_waiting=heard.append)
        asked_at = time.time()
        waiting = caught.value.waiting
        assert waiting is not None
        (route,) = waiting.routes
        assert (route.route, route.reason) == ("secondary", "cooling")
        assert route.until is not None
        assert asked_at < route.until < asked_at + 4
        assert "secondary (cooling) until" in str(caught.value)
        assert heard == [waiting], "--wait's one line"
        assert handle.result().waiting == waiting, "the record says it too"
        stack.secondary.reset()
        result = handle.wait(30)
    assert result.state is JobState.SUCCEEDED
    assert result.waiting is None, "gone once the job is claimed again"
