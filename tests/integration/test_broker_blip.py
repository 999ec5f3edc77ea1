"""A broker connection blip with jobs in flight, through a real worker: a private redis-server
(the broker and the job store), restarted on its append-only file while six jobs wait on their
provider calls. The worker says once that it lost the broker, with no traceback for each task
in flight, and every job finishes, once."""

from __future__ import annotations

import time

import pytest

from routing.models import JobState
from tests.integration.conftest import make_stack, tear_down
from tests.integration.private_redis import RestartableRedis

IN_FLIGHT = 6
#: What Celery's consumer logs once per lost broker connection (celery.worker.consumer).
CONNECTION_LOST = "Connection to broker lost"


@pytest.fixture
def private_redis(tmp_path):
    server = RestartableRedis(tmp_path)
    server.start()
    yield server
    server.stop()


def test_a_broker_blip_logs_one_line_and_the_jobs_in_flight_still_finish(private_redis, tmp_path):
    stack = make_stack(private_redis.url, tmp_path, worker=True)
    assert stack.worker is not None
    try:
        stack.primary.set_faults(latency_ms=4000)  # long enough to restart Redis under them
        with stack.client() as client:
            handles = [client.submit(f"job {n}") for n in range(IN_FLIGHT)]
        stack.worker.process.wait_until(  # type: ignore[union-attr]
            lambda: stack.primary.stats()["in_flight"] == IN_FLIGHT,
            timeout_s=30,
            what=f"{IN_FLIGHT} calls in flight",
        )
        before = len(stack.worker.log())
        private_redis.stop()
        private_redis.start()
        with stack.client() as client:
            results = [client.job(h.job_id).wait(60) for h in handles]
        assert [r.state for r in results] == [JobState.SUCCEEDED] * IN_FLIGHT
        assert all(len(r.provider_calls) == 1 for r in results), "each call made once"
        assert stack.primary.chat_requests() == IN_FLIGHT
        time.sleep(1)  # anything the reconnect logs late
        blip = stack.worker.log()[before:]
        assert blip.count(CONNECTION_LOST) == 1, blip
        assert "Traceback" not in blip, blip
        assert "cannot be acknowledged after a connection loss" not in blip, blip
        assert "worker_cancel_long_running_tasks_on_connection_loss" not in blip, blip
        per_task = [
            line
            for line in blip.splitlines()
            if any(h.job_id in line for h in handles) and " succeeded in " not in line
        ]
        assert per_task == [], "no line per task in flight, but its success"
    finally:
        tear_down(stack)
