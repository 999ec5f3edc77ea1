"""Priority lanes for real (routing.lanes): a real Redis, real worker processes, a simulator
over HTTP that takes 100 ms a call, so a worker's slots are what jobs wait for.

Loose by design: what is asserted is order (an interactive job starts before the batch that was
queued ahead of it drains; two batches finish together), never a figure of speed. The figures
themselves are measured by ``python -m ops.bench lanes``.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator

import pytest

from producers.client import Client
from routing.keys import Keys
from routing.lanes import worker_queues
from routing.models import JobState
from tests.helpers import eventually
from tests.integration.conftest import Stack, make_stack, tear_down
from tests.integration.harness import Worker

#: Each provider call takes this long: jobs wait for slots, not for the CPU.
CALL_MS = 100


@pytest.fixture
def stack(redis_url, tmp_path) -> Iterator[Stack]:
    running = make_stack(redis_url, tmp_path, worker=False)
    running.primary.set_faults(latency_ms=CALL_MS)
    yield running
    tear_down(running)


def times_of(stack: Stack, job_ids: list[str]) -> list[tuple[float, float, float]]:
    """(created, started, finished) of each job, seconds on Redis's clock."""
    keys = stack.settings_keys()
    with stack.redis() as client:
        pipe = client.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hmget(keys.job(job_id), ["created_at", "started_at", "finished_at"])
        rows = pipe.execute()
    return [(int(c) / 1000, int(s) / 1000, int(f) / 1000) for c, s, f in rows]


def all_finished(stack: Stack, job_ids: list[str]) -> bool:
    keys = stack.settings_keys()
    with stack.redis() as client:
        pipe = client.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hget(keys.job(job_id), "state")
        states = pipe.execute()
    assert "failed" not in states, "no job fails here"
    return all(state == JobState.SUCCEEDED for state in states)


def submit_bulk(client: Client, count: int, tag: str) -> list[str]:
    return [client.submit(f"{tag} line {n}").job_id for n in range(count)]


def test_interactive_jobs_start_ahead_of_a_running_batch(stack, tmp_path):
    """A 3,000-job batch is queued and running; an interactive producer submits one job a
    second meanwhile. Each interactive job waits for a free slot, not for the batch: every one
    submitted while the batch still had work queued started before the batch's last job did,
    and the longest wait is a small part of the batch's run."""
    worker = Worker(stack.env, tmp_path / "worker.log", concurrency=8).start()
    interactive_ids: list[str] = []
    stop = threading.Event()
    try:
        with (
            Client(settings=stack.settings(), lane="bulk") as batch,
            Client(settings=stack.settings()) as web,
        ):
            bulk_ids = submit_bulk(batch, 3000, "batch")

            def person() -> None:
                while not stop.is_set():
                    if stack.queue_length() < 200:  # the batch is nearly drained: enough
                        return
                    interactive_ids.append(web.submit("a person waits").job_id)
                    stop.wait(1.0)

            producer = threading.Thread(target=person)
            producer.start()
            eventually(lambda: all_finished(stack, bulk_ids), timeout=600, interval=1)
            stop.set()
            producer.join()
            eventually(lambda: all_finished(stack, interactive_ids), timeout=60, interval=0.5)
    finally:
        stop.set()
        worker.stop()
    assert len(interactive_ids) >= 5, "the batch ran long enough to measure"
    bulk = times_of(stack, bulk_ids)
    people = times_of(stack, interactive_ids)
    last_bulk_start = max(started for _, started, _ in bulk)
    batch_s = max(finished for *_, finished in bulk) - min(created for created, *_ in bulk)
    waits = sorted(started - created for created, started, _ in people)
    late = [started - created for created, started, _ in people if started > last_bulk_start]
    assert not late, f"interactive jobs waited behind the batch: {late}"
    p50, worst = statistics.median(waits), waits[-1]
    print(f"\nbatch {batch_s:.1f}s; interactive waits p50 {p50 * 1000:.0f} ms, max {worst:.2f}s")
    assert worst < batch_s / 5, f"the longest interactive wait {worst:.1f}s, batch {batch_s:.1f}s"


def test_two_batches_started_apart_share_the_workers_and_finish_together(stack, tmp_path):
    """Batch B starts 4 s after batch A, each 800 jobs: served first-come-first-served, A
    would finish its run in about half of B's; sharing the slots, both spans come out alike,
    and A is still finishing jobs after B's first ones are done."""
    worker = Worker(stack.env, tmp_path / "worker.log", concurrency=8).start()
    try:
        with (
            Client(settings=stack.settings(), lane="bulk") as first,
            Client(settings=stack.settings(), lane="bulk") as second,
        ):
            a_ids = submit_bulk(first, 800, "A")
            time.sleep(4)
            b_ids = submit_bulk(second, 800, "B")
            assert first.queue_of(first.prepare("x")[1]) != second.queue_of(
                second.prepare("x")[1]
            ), "each batch has a bulk queue of its own"
            eventually(lambda: all_finished(stack, a_ids + b_ids), timeout=600, interval=1)
    finally:
        worker.stop()
    a, b = times_of(stack, a_ids), times_of(stack, b_ids)
    span_a = max(f for *_, f in a) - min(c for c, *_ in a)
    span_b = max(f for *_, f in b) - min(c for c, *_ in b)
    print(f"\nspans: A {span_a:.1f}s, B {span_b:.1f}s")
    assert abs(span_a - span_b) <= 0.3 * max(span_a, span_b), (span_a, span_b)
    assert max(f for *_, f in a) > min(f for *_, f in b), "A and B ran side by side"


def test_a_worker_of_the_interactive_lane_leaves_bulk_jobs_alone(stack, tmp_path):
    keys = Keys(stack.namespace)
    queues = worker_queues(keys, stack.settings(), ("interactive",))
    assert queues == [keys.queue, keys.control_queue]
    worker = Worker(stack.env, tmp_path / "worker.log", queues=queues).start()
    try:
        with (
            Client(settings=stack.settings(), lane="bulk") as batch,
            Client(settings=stack.settings()) as web,
        ):
            bulk = batch.submit("not for this worker")
            person = web.submit("for this one")
            assert person.wait(timeout=30).state is JobState.SUCCEEDED
            time.sleep(3)  # the bulk job had every chance to be taken
            assert bulk.result().state is JobState.QUEUED
            assert stack.queue_length() == 1, "its message is still in its bulk queue"
            with stack.redis() as client:
                queue = client.hget(keys.job(bulk.job_id), "queue")
                assert queue is not None
                assert queue.startswith("bulk-")
                assert client.llen(keys.queue_list(queue)) == 1
    finally:
        worker.stop()
    both = Worker(stack.env, tmp_path / "worker2.log").start()  # both lanes: it runs now
    try:
        assert bulk.wait(timeout=30).state is JobState.SUCCEEDED
    finally:
        both.stop()


def test_a_worker_takes_every_waiting_interactive_job_before_any_bulk_one(stack, tmp_path):
    """Priority, not round-robin: 100 bulk jobs queued first, 30 interactive after, then a
    worker of 4 threads starts. Taken in turn, about half the bulk jobs would start before the
    last interactive one; first, at most the few a slot race lets through (one per thread)."""
    with (
        Client(settings=stack.settings(), lane="bulk") as batch,
        Client(settings=stack.settings()) as web,
    ):
        bulk_ids = submit_bulk(batch, 100, "queued first")
        people = [web.submit(f"queued after {n}").job_id for n in range(30)]
        worker = Worker(stack.env, tmp_path / "worker.log", concurrency=4).start()
        try:
            eventually(lambda: all_finished(stack, people), timeout=120, interval=0.5)
        finally:
            worker.stop()
    last_person = max(started for _, started, _ in times_of(stack, people))
    with stack.redis() as client:
        pipe = client.pipeline(transaction=False)
        for job_id in bulk_ids:
            pipe.hget(stack.settings_keys().job(job_id), "started_at")
        starts = [int(s) / 1000 for s in pipe.execute() if s]
    ahead = [s for s in starts if s < last_person]
    assert len(ahead) <= 4, f"{len(ahead)} bulk jobs started before the last interactive one"
