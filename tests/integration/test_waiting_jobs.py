"""What a job every route refuses does, through a real worker: it fails at once when its routes
cannot heal by themselves (a wrong URL, its own calls' or those that opened its breaker), and
waits, saying for what, when they can (Retry-After): to the client, ``turnout submit --wait`` and
``turnout show``, and ``turnout serve``'s 504 and job."""

from __future__ import annotations

import json
import re
import secrets
import time
import uuid

import httpx
import pytest

from ops.simulator.server import LOOPBACK, free_port
from routing.errors import ErrorClass, JobTimeout
from routing.models import JobState, Waiting
from tests.integration.conftest import Stack, run_cli, tear_down
from tests.integration.harness import Sim, Worker, stack_env, write_config
from tests.integration.test_serve import healthy, start_serve


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


def test_a_job_behind_a_breaker_others_opened_on_a_wrong_url_fails_at_once(stack):
    policy = {"targets": ["primary"], "retries_per_target": 3, "deadline_s": 8}
    with stack.client() as client:
        first = client.submit("open it", policy=policy).wait(60)
        assert first.state is JobState.FAILED
        started = time.monotonic()
        result = client.submit("hello?", policy=policy).wait(60)
    assert time.monotonic() - started < 3, "not a wait for the breaker's cool-down"
    assert result.state is JobState.FAILED
    assert [a.outcome for a in result.attempts] == ["skipped"], "it never called the route"
    assert result.error is not None
    assert result.error.error_class is ErrorClass.ALL_UNAVAILABLE
    assert "primary: open (" in result.error.message
    assert "connection refused at 127.0.0.1:" in result.error.message, "what opened it"
    assert result.waiting is None


def test_the_cli_says_what_a_job_waits_for(stack):
    stack.secondary.set_faults(fail_rate=1.0, fail_status=429, retry_after_s=4)
    try:
        submitted = run_cli(
            [
                "submit",
                "--prompt",
                "later, then",
                "--target",
                "secondary",
                "--wait",
                "--timeout",
                "2.5",
            ],
            stack.env,
        )
        assert submitted.returncode == 1, submitted.stderr
        assert re.search(r"^waiting for secondary \(cooling\) until ", submitted.stderr, re.M), (
            "--wait's line"
        )
        found = re.search(r"job (\S+) did not finish within 2.5s", submitted.stderr)
        assert found is not None, submitted.stderr
        job_id = found.group(1)
        shown = run_cli(["show", job_id], stack.env)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout == f"{job_id} queued\n"
        assert re.search(r"^waiting for secondary \(cooling\) until ", shown.stderr, re.M)
        as_json = run_cli(["show", job_id, "--json"], stack.env)
        assert as_json.returncode == 0, as_json.stderr
        waiting = json.loads(as_json.stdout)["waiting"]
        assert [(r["route"], r["reason"]) for r in waiting["routes"]] == [("secondary", "cooling")]
        assert waiting["until"] > time.time() - 1
    finally:
        stack.secondary.reset()
    with stack.client() as client:
        assert client.job(job_id).wait(30).state is JobState.SUCCEEDED
    done = json.loads(run_cli(["show", job_id, "--json"], stack.env).stdout)
    assert done["waiting"] is None


def test_serve_names_what_a_job_waits_for_in_its_504_and_its_job(stack, tmp_path):
    token = secrets.token_urlsafe(32)
    env = {**stack.env, "TURNOUT_API_TOKENS": token, "TURNOUT_SERVE_TIMEOUT": "2.5"}
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    auth = {"Authorization": f"Bearer {token}"}
    stack.secondary.set_faults(fail_rate=1.0, fail_status=429, retry_after_s=4)
    try:
        with start_serve(env, tmp_path, port) as process:
            process.wait_until(lambda: healthy(url), timeout_s=20, what="200 at /healthz")
            hello = {"model": "secondary", "messages": [{"role": "user", "content": "later"}]}
            response = httpx.post(
                f"{url}/v1/chat/completions", json=hello, headers=auth, timeout=15
            )
            assert response.status_code == 504, response.text
            body = response.json()
            assert "is queued, waiting for secondary (cooling) until " in body["error"]["message"]
            waiting = body["turnout"]["waiting"]
            assert [(r["route"], r["reason"]) for r in waiting["routes"]] == [
                ("secondary", "cooling")
            ]
            job_id = body["turnout"]["job_id"]
            job = httpx.get(f"{url}/v1/jobs/{job_id}", headers=auth, timeout=15).json()
            assert job["state"] == "queued"
            assert job["waiting"] == waiting
            stack.secondary.reset()
            with stack.client() as client:
                assert client.job(job_id).wait(30).state is JobState.SUCCEEDED
            job = httpx.get(f"{url}/v1/jobs/{job_id}", headers=auth, timeout=15).json()
            assert job["state"] == "succeeded"
            assert job["waiting"] is None
    finally:
        stack.secondary.reset()
