"""``Client`` and ``turnout serve`` ride out Redis going away, then fail with a clear error;
a retried submit never makes a second job, nor sends one job's message twice.

A private redis-server (append-only file, fsync always, a password) that the tests SIGKILL and
start again on its port; a real worker and two simulators on it. Each test leaves Redis up."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest
import redis

from ops.simulator.server import free_port
from producers.client import Client, JobHandle
from routing.errors import RedisUnavailable
from routing.keys import Keys
from routing.models import JobState
from tests.helpers import eventually
from tests.integration.conftest import Stack, run_cli, tear_down
from tests.integration.harness import Sim, Worker, settings_for, stack_env, write_config
from tests.integration.private_redis import RestartableRedis
from tests.integration.test_serve import healthy, start_serve

T = TypeVar("T")
PASSWORD = f"pw-{secrets.token_hex(8)}"
HELLO = {"model": "default", "messages": [{"role": "user", "content": "Hello there"}]}


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RestartableRedis]:
    server = RestartableRedis(tmp_path_factory.mktemp("redis"), password=PASSWORD)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ride(
    private_redis: RestartableRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The production lease and visibility timeout: a restart must not lapse a running job."""
    directory = tmp_path_factory.mktemp("stack")
    namespace = f"t-{uuid.uuid4().hex[:10]}"
    primary = Sim("primary", key=f"sim-primary-{uuid.uuid4().hex}")
    secondary = Sim("secondary", key=f"sim-secondary-{uuid.uuid4().hex}")
    config = write_config(
        directory / "turnout.yaml", [primary, secondary], policy={"deadline_s": 60}
    )
    env = stack_env(
        private_redis.url, namespace, config, [primary, secondary],
        TURNOUT_LEASE_S="30", TURNOUT_VISIBILITY_TIMEOUT="3600",
    )  # fmt: skip
    worker = Worker(env, directory / "worker.log", concurrency=16).start()
    stack = Stack(namespace, env, config, primary, secondary, worker, private_redis.url)
    yield stack
    tear_down(stack)


@pytest.fixture
def stack(ride: Stack, private_redis: RestartableRedis) -> Iterator[Stack]:
    ride.primary.reset()
    ride.secondary.reset()
    yield ride
    if not private_redis.process or not private_redis.process.running():
        private_redis.start()
    worker = ride.worker.process if ride.worker is not None else None
    assert worker is not None
    assert worker.running(), f"the worker died:\n{worker.log()[-3000:]}"


def client_for(stack: Stack, **env: str) -> Client:
    return Client(settings=settings_for({**stack.env, **env}))


def while_restarting(
    server: RestartableRedis,
    operation: Callable[[], T],
    *,
    away_s: float = 2.0,
    kill_when: threading.Event | None = None,
) -> T:
    """``operation()`` on a thread while Redis is SIGKILLed (once ``kill_when`` is set, if
    given) and started again on its AOF ``away_s`` later. The restart stays on this thread:
    a child started from a thread dies with that thread (ops.stack's death signal)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        running = pool.submit(operation)
        if kill_when is not None:
            assert kill_when.wait(30), "the operation never got to the point of the kill"
        server.kill()
        time.sleep(away_s)
        server.start()
        return running.result(timeout=120)


def chat_calls(stack: Stack) -> int:
    return stack.primary.chat_requests() + stack.secondary.chat_requests()


def job_records(stack: Stack) -> list[str]:
    keys = Keys(stack.namespace)
    return [
        key
        for key in stack.job_keys()
        if key.startswith(keys.job("")) and ":" not in key[len(keys.job("")) :]
    ]


def queued_message_ids(stack: Stack) -> list[str]:
    """The job id of every message in the jobs queue, in order."""
    keys = Keys(stack.namespace)
    with stack.redis() as client:
        raw = client.lrange(keys.queue_list(keys.queue), 0, -1)
    return [json.loads(message)["headers"]["id"] for message in raw]


# --- Client: rides out a restart, then a clear error --------------------------------------------


def test_a_submit_while_redis_restarts_goes_through_once_it_is_back(stack, private_redis):
    with client_for(stack) as client:
        client.submit("warm up the connections").wait(timeout=30)
        stack.primary.reset()

        def submit() -> tuple[JobHandle, float]:
            time.sleep(0.2)  # Redis is gone by now
            started = time.monotonic()
            return client.submit("Hello during a restart"), time.monotonic() - started

        handle, waited_s = while_restarting(private_redis, submit)
        result = handle.wait(timeout=60)
    assert waited_s >= 1.5, "the submit waited for Redis"
    assert result.state is JobState.SUCCEEDED, result
    assert chat_calls(stack) == 1, "one job, one call"


def test_an_async_wait_rides_out_a_restart_and_so_does_the_worker(stack, private_redis):
    stack.primary.set_faults(latency_ms=1500)  # Redis goes while the worker is in the call

    calling = threading.Event()

    async def scenario() -> Any:
        async with client_for(stack) as client:
            handle = await client.asubmit("Hello, slowly")
            await asyncio.to_thread(
                eventually, lambda: stack.primary.stats()["in_flight"] == 1, timeout=15
            )
            calling.set()
            return await handle.wait(timeout=60)

    result = while_restarting(private_redis, lambda: asyncio.run(scenario()), kill_when=calling)
    assert result.state is JobState.SUCCEEDED, result
    assert chat_calls(stack) == 1, "the worker finished its call's job after the restart, once"


def test_redis_away_past_the_patience_is_a_clear_error_naming_redis_not_its_password(
    stack, private_redis
):
    with client_for(stack, TURNOUT_REDIS_PATIENCE_S="1.5") as client:
        private_redis.kill()
        started = time.monotonic()
        with pytest.raises(RedisUnavailable) as caught:
            client.submit("Hello, nobody")
        gave_up_after_s = time.monotonic() - started
    message = str(caught.value)
    assert 1.5 <= gave_up_after_s < 10
    assert message.startswith(
        f"could not submit the job: Redis at 127.0.0.1:{private_redis.port}/0 did not answer"
    ), message
    assert "TURNOUT_REDIS_PATIENCE_S=1.5" in message
    assert PASSWORD not in message
    assert PASSWORD not in repr(caught.value)
    assert caught.value.job_id is None, "nothing was stored"

    cli = run_cli(
        ["submit", "--prompt", "Hello, nobody"], {**stack.env, "TURNOUT_REDIS_PATIENCE_S": "1"}
    )
    assert cli.returncode == 1
    assert "Traceback" not in cli.stderr
    assert f"Redis at 127.0.0.1:{private_redis.port}/0 did not answer" in cli.stderr
    assert PASSWORD not in cli.stderr + cli.stdout
    private_redis.start()


# --- a retried submit: one job, one message -----------------------------------------------------


def failing_once(
    operation: Callable[..., Any], after: Callable[[], None] = lambda: None
) -> Callable[..., Any]:
    """``operation``, done for real, whose first call then raises as if the connection dropped
    before the reply came (``after`` runs first)."""
    calls: list[int] = []

    def flaky(*args: Any, **kwargs: Any) -> Any:
        result = operation(*args, **kwargs)
        calls.append(1)
        if len(calls) == 1:
            after()
            raise redis.ConnectionError("Connection closed by server.")
        return result

    return flaky


def test_a_send_that_raised_after_its_message_was_queued_never_sends_the_job_twice(stack):
    """The message reached the queue, the send raised anyway. The job is taken back before a
    second message goes out, under a fresh id: one job record, one message per job id, and the
    first message finds no job (the worker drops it). One job runs, once."""
    assert stack.worker is not None
    stack.worker.stop()  # nothing takes the messages while the queue is inspected
    before = set(job_records(stack))
    try:
        with client_for(stack) as client:
            client._publish = failing_once(client._publish)  # type: ignore[method-assign]
            handle = client.submit(
                {"messages": [{"role": "user", "content": "once"}], "idempotency_key": "k-1"}
            )
            messages = queued_message_ids(stack)
            assert len(messages) == 2, messages
            assert len(set(messages)) == 2, "never two messages for one job"
            assert handle.job_id in messages
            new_records = set(job_records(stack)) - before
            assert new_records == {Keys(stack.namespace).job(handle.job_id)}, "one job"
            again = client.submit(
                {"messages": [{"role": "user", "content": "once"}], "idempotency_key": "k-1"}
            )
            assert again.job_id == handle.job_id, "the key names the job the retry stored"
    finally:
        stack.worker.start()
    with client_for(stack) as client:
        result = client.job(handle.job_id).wait(timeout=30)
    assert result.state is JobState.SUCCEEDED
    assert chat_calls(stack) == 1, "the taken-back job's message ran nothing"
    eventually(lambda: stack.queue_length() == 0, timeout=15)


def test_a_send_that_raised_after_a_worker_claimed_its_job_keeps_that_job(stack):
    """The take-back is refused when a worker already has the job (its message got through):
    the submit returns that job, and sends nothing more."""
    with client_for(stack) as client:
        jobs: list[str] = []
        publish = client._publish

        def counted(job_id: str, queue: str | None = None) -> None:
            jobs.append(job_id)
            publish(job_id, queue)

        def claimed() -> None:
            eventually(lambda: client.store.state(jobs[-1]) is not JobState.QUEUED, timeout=15)

        client._publish = failing_once(counted, after=claimed)  # type: ignore[method-assign]
        handle = client.submit("claimed before the send returned")
        result = handle.wait(timeout=30)
    assert jobs == [handle.job_id], "one job, one message"
    assert result.state is JobState.SUCCEEDED
    assert chat_calls(stack) == 1


def test_a_submit_that_stored_its_job_then_lost_redis_says_so_and_its_key_finds_the_job(
    stack, private_redis
):
    """Redis goes between the create and the send, for longer than the patience: the job
    cannot be taken back, so RedisUnavailable carries its id. Submitting again with the same
    idempotency key once Redis is back finds that job (and sends its message): it runs once."""
    request = {"messages": [{"role": "user", "content": "stranded"}], "idempotency_key": "k-2"}
    with client_for(stack, TURNOUT_REDIS_PATIENCE_S="1") as client:

        def redis_goes(job_id: str, queue: str | None = None) -> None:
            private_redis.kill()
            raise redis.ConnectionError("Connection closed by server.")

        client._publish = redis_goes  # type: ignore[method-assign]
        with pytest.raises(RedisUnavailable) as caught:
            client.submit(request)
    assert caught.value.job_id is not None, "the job was stored: it may run"
    private_redis.start()
    with client_for(stack) as client:
        again = client.submit(request)
        result = again.wait(timeout=30)
    assert again.job_id == caught.value.job_id
    assert result.state is JobState.SUCCEEDED
    assert chat_calls(stack) == 1


@pytest.mark.parametrize("keyed", [False, True], ids=["no key", "idempotency key"])
def test_a_create_whose_reply_was_lost_is_not_stored_twice(stack, keyed):
    request: dict[str, Any] = {"messages": [{"role": "user", "content": f"lost reply {keyed}"}]}
    if keyed:
        request["idempotency_key"] = f"k-{uuid.uuid4().hex}"
    before = len(job_records(stack))
    with client_for(stack) as client:
        client.store.create = failing_once(client.store.create)  # type: ignore[method-assign]
        counts_before = client.store.counts()
        result = client.submit(request).wait(timeout=30)
        counts_after = client.store.counts()
    assert result.state is JobState.SUCCEEDED
    assert len(job_records(stack)) == before + 1, "one record"
    assert chat_calls(stack) == 1
    assert counts_after.get("succeeded", 0) - counts_before.get("succeeded", 0) == 1


# --- turnout serve: 503 with Retry-After while Redis is away, 200 once it is back --------------


def test_serve_answers_503_with_retry_after_while_redis_is_away_and_200_after(
    stack, private_redis, tmp_path
):
    token = secrets.token_urlsafe(32)
    env = {**stack.env, "TURNOUT_API_TOKENS": token, "TURNOUT_REDIS_PATIENCE_S": "1"}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {token}"}
    with start_serve(env, tmp_path, port) as process:
        process.wait_until(lambda: healthy(url), timeout_s=20, what="200 at /healthz")
        assert (
            httpx.post(
                f"{url}/v1/chat/completions", json=HELLO, headers=auth, timeout=30
            ).status_code
            == 200
        )
        private_redis.kill()
        try:
            away = httpx.post(f"{url}/v1/chat/completions", json=HELLO, headers=auth, timeout=30)
            health = httpx.get(f"{url}/healthz", timeout=30)
        finally:
            private_redis.start()
        back = httpx.post(f"{url}/v1/chat/completions", json=HELLO, headers=auth, timeout=30)
        log = process.log()
    assert away.status_code == 503, away.text
    assert away.headers["retry-after"] == "5"
    error = away.json()["error"]
    assert (error["type"], error["code"]) == ("service_unavailable", "queue_unavailable")
    assert set(error) >= {"message", "type", "param", "code"}, "OpenAI's error shape"
    assert health.status_code == 503
    for text in (away.text, health.text, log):
        assert PASSWORD not in text
    assert "Traceback" not in log
    assert back.status_code == 200, back.text
    assert back.json()["object"] == "chat.completion"
