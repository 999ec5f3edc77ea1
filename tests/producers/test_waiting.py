"""Waiting for jobs: bounded by its timeout, woken by the finish, ended by close()."""

import asyncio
import threading
import time

import pytest

from routing.errors import JobTimeout, TurnoutError
from routing.models import JobState
from tests.integration.conftest import make_stack, tear_down


@pytest.fixture
def idle(redis_url, tmp_path):
    stack = make_stack(redis_url, tmp_path, worker=False)
    yield stack
    tear_down(stack)


def finish(stack, job_id):
    """Play the worker's part: claim and finish the job the way a worker does."""
    from routing.jobstore import JobStore, redis_client

    store = JobStore(redis_client(stack.redis_url), stack.settings_keys(), ttl_s=600)
    assert store.claim(job_id, "t", lease_s=5, max_runs=3).status == "claimed"
    assert store.finish(job_id, JobState.SUCCEEDED, {"text": "done"}, [], token="t")
    store.redis.close()


def test_a_wait_ends_at_its_timeout(idle):
    with idle.client() as client:
        handle = client.submit("nobody will run this")
        started = time.monotonic()
        with pytest.raises(JobTimeout):
            handle.wait(timeout=0.3)
        assert time.monotonic() - started < 1.5


def test_closing_the_client_ends_other_threads_waits(idle):
    client = idle.client()
    handle = client.submit("nobody will run this either")
    outcome = []

    def wait():
        try:
            handle.wait(timeout=30)
        except TurnoutError as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.3)
    client.close()
    waiter.join(timeout=10)
    assert not waiter.is_alive(), "the wait ended when the client closed"
    assert outcome
    assert "closed" in str(outcome[0])


def test_a_waiter_giving_up_does_not_deafen_another_on_the_same_job(idle):
    async def main():
        with idle.client() as client:
            handle = await client.asubmit("two waiters")
            quitter = asyncio.create_task(client.ajob(handle.job_id).wait(timeout=0.05))
            stayer = asyncio.create_task(client.ajob(handle.job_id).wait(timeout=30))
            with pytest.raises(JobTimeout):
                await quitter
            await asyncio.sleep(0.2)
            await asyncio.to_thread(finish, idle, handle.job_id)
            finished_at = time.monotonic()
            result = await stayer
            woke_after = time.monotonic() - finished_at
            await client.aclose()
        return result, woke_after

    result, woke_after = asyncio.run(main())
    assert result.text == "done"
    # A missed notification would only be noticed by the 2 s re-check.
    assert woke_after < 1.5, f"woke {woke_after:.2f}s after the finish"
