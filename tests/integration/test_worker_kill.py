"""At-least-once, effectively once: a worker SIGKILLed mid-job loses nothing."""

import time

from producers.client import Client
from routing.models import JobState
from tests.helpers import eventually
from tests.integration.harness import (
    Sim,
    Worker,
    broker_env,
    settings_for,
    stack_env,
    write_config,
)


def test_a_job_in_flight_when_its_worker_is_killed_completes_once(
    broker, redis_url, namespace, tmp_path
):
    primary = Sim("primary", key="sim-primary-key-123456789", latency_ms=5000)
    secondary = Sim("secondary", key="sim-secondary-key-123456789")
    config = write_config(tmp_path / "turnout.yaml", [primary, secondary])
    env = stack_env(redis_url, namespace, config, [primary, secondary], **broker_env(broker))
    first = Worker(env, tmp_path / "first.log").start()
    second = Worker(env, tmp_path / "second.log")
    client = Client(settings=settings_for(env))
    try:
        handle = client.submit("survive a crash")
        eventually(
            lambda: primary.stats()["in_flight"], timeout=20, what="the job to reach the provider"
        )
        assert handle.state() is JobState.RUNNING
        first.kill()
        killed_at = time.monotonic()

        second.start()
        result = handle.wait(timeout=90)
        recovered_s = time.monotonic() - killed_at
        print(f"\nkilled mid-call; completed {recovered_s:.1f}s later (visibility timeout 15s)")

        assert result.state is JobState.SUCCEEDED
        assert result.runs == 2, "the second run picked the job up"
        # The first run died inside its provider call, so only the second run's attempt exists.
        assert [(a.deployment, a.outcome, a.run) for a in result.attempts] == [("primary", "ok", 2)]
        time.sleep(3)  # long enough for any duplicate delivery to show up
        again = handle.result()
        assert again.finished_at == result.finished_at, "no second result was written"
        assert again.attempts == result.attempts
        assert primary.chat_requests() == 2, "one call cut off by the kill, one that succeeded"
        assert secondary.chat_requests() == 0
    finally:
        client.close()
        first.stop()
        second.stop()
        primary.stop()
        secondary.stop()


def test_a_strict_worker_with_a_missing_key_refuses_to_start(redis_url, namespace, tmp_path):
    """TURNOUT_STRICT_CONFIG=1 keeps the refusal (without it the worker starts: see
    test_missing_credentials.py)."""
    primary = Sim("primary", key="sim-primary-key-123456789")
    try:
        config = write_config(tmp_path / "turnout.yaml", [primary])
        env = stack_env(redis_url, namespace, config, [], TURNOUT_STRICT_CONFIG="1")
        worker = Worker(env, tmp_path / "worker.log").start(wait=False)
        assert worker.process is not None
        assert worker.process.wait(timeout_s=30) == 78
        log = worker.log()
        assert "SIM_KEY_PRIMARY is not set" in log
        assert "export SIM_KEY_PRIMARY=" in log
    finally:
        primary.stop()
