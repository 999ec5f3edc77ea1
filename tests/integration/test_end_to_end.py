"""A job's whole path with real parts: producer -> Redis -> worker -> simulator -> result."""

import asyncio
import base64
import json
import time
import uuid

from routing.models import JobState
from tests.integration.conftest import run_cli

CONTRACT = (
    "job_id",
    "state",
    "text",
    "deployment",
    "provider",
    "model",
    "usage",
    "cost_usd",
    "attempts",
    "error",
)


def test_a_job_completes_through_the_client(live):
    with live.client() as client:
        result = client.complete("What is 2 + 2?", timeout=30)
    assert result.state is JobState.SUCCEEDED
    assert (result.deployment, result.provider, result.model) == ("primary", "openai", "sim-model")
    assert result.text is not None
    assert result.text.startswith("primary (sim-model) answers")
    assert result.usage is not None
    assert result.usage.prompt_tokens > 0
    assert result.cost_usd is not None
    assert result.cost_usd > 0
    assert result.runs == 1
    (attempt,) = result.attempts
    assert (attempt.deployment, attempt.outcome, attempt.status_code) == ("primary", "ok", 200)
    assert attempt.latency_ms > 0
    assert live.primary.chat_requests() == 1


def test_the_cli_prints_every_contract_field(live):
    done = run_cli(["submit", "--prompt", "hello there", "--wait", "--json"], live.env)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    for key in CONTRACT:
        assert key in data, key
    assert data["state"] == "succeeded"
    assert set(data["usage"]) >= {"prompt_tokens", "completion_tokens"}
    assert set(data["attempts"][0]) >= {"deployment", "outcome", "status_code", "latency_ms"}
    assert data["error"] is None


def test_the_cli_reports_a_failed_job_with_its_class(live):
    live.primary.set_faults(fail_rate=1.0, fail_status=400)
    done = run_cli(["submit", "--prompt", "hello", "--wait", "--json"], live.env)
    assert done.returncode == 1
    data = json.loads(done.stdout)
    assert data["state"] == "failed"
    assert data["error"]["class"] == "bad_request"
    assert data["error"]["message"]


def test_the_celery_message_carries_the_job_id_only(idle_stack):
    prompt = "a prompt that must never travel through the broker"
    with idle_stack.client() as client:
        handle = client.submit(prompt)
    with idle_stack.redis() as redis_client:
        (raw,) = redis_client.lrange(
            idle_stack.settings_keys().queue_list(idle_stack.settings_keys().queue), 0, -1
        )
    assert prompt not in raw
    envelope = json.loads(raw)
    args, kwargs, _ = json.loads(base64.b64decode(envelope["body"]))
    assert (args, kwargs) == ([handle.job_id], {})
    assert envelope["headers"]["argsrepr"] == repr(handle.job_id)
    assert handle.state() is JobState.QUEUED


def test_an_idempotency_key_runs_one_job(live):
    request = {"messages": [{"role": "user", "content": "charge once"}], "idempotency_key": "k-1"}
    with live.client() as client:
        first = client.submit(request)
        second = client.submit(request)
        assert first.job_id == second.job_id
        first.wait(30)
    assert live.primary.chat_requests() == 1


def test_a_repeated_key_sends_the_message_a_dead_producer_never_sent(live):
    """A producer that died between storing its job and sending the message leaves a queued
    job with no message (and no beat runs here to re-send it): the retry with the same key
    gets the job done, and only once."""
    request = {"messages": [{"role": "user", "content": "lost message"}], "idempotency_key": "k-2"}
    with live.client() as client:
        completion, policy = client.prepare(request)
        job_id, created = client.store.create(str(uuid.uuid4()), completion, policy)
        assert created
        assert live.queue_length() == 0, "stored, never sent"
        retried = client.submit(request)
        assert retried.job_id == job_id
        assert retried.wait(30).state is JobState.SUCCEEDED
        assert client.submit(request).job_id == job_id, "a finished job is not sent again"
    assert live.primary.chat_requests() == 1


def test_the_asyncio_client_sends_a_lost_message_again_too(live):
    request = {"messages": [{"role": "user", "content": "lost, async"}], "idempotency_key": "k-3"}

    async def retry(client):
        handle = await client.asubmit(request)
        result = await handle.wait(30)
        await client.aclose()
        return handle.job_id, result

    with live.client() as client:
        completion, policy = client.prepare(request)
        job_id, _ = client.store.create(str(uuid.uuid4()), completion, policy)
        retried_id, result = asyncio.run(retry(client))
    assert retried_id == job_id
    assert result.state is JobState.SUCCEEDED


def test_the_asyncio_client_never_blocks_the_event_loop(live):
    live.primary.set_faults(latency_ms=1000)
    gaps = []

    async def ticker(stop):
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    async def main():
        stop = asyncio.Event()
        ticking = asyncio.create_task(ticker(stop))
        with live.client() as client:
            results = await asyncio.gather(
                *(client.acomplete(f"async {n}", timeout=30) for n in range(5))
            )
            await client.aclose()
        stop.set()
        await ticking
        return results

    results = asyncio.run(main())
    assert all(r.state is JobState.SUCCEEDED for r in results)
    # Blocking on a one-second provider call would stall the loop for a second.
    assert max(gaps) < 0.5, f"the event loop stalled for {max(gaps):.2f}s"
