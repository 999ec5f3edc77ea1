"""What everyone sees when Redis loses its last writes (``appendfsync everysec``: a crash may
lose about a second). A private redis-server is SIGKILLed and started again on an older
snapshot (its RDB file written by SAVE at the chosen moment), or loses one of the two halves
of a job by hand, and each job either completes or ends in a clear, typed error:

- record and message both restored from before the run: the job runs again (at-least-once),
  and the rerun shows in the workers' logs (a second "succeeded" for the job id);
- record kept, message lost (the producer's create made it, its publish did not): the
  reconciler re-sends the message and the job completes once;
- message kept, record gone: the worker drops the message with a log line saying so, and a
  caller waiting on the job gets JobNotFound at its next re-check instead of waiting forever.
"""

from __future__ import annotations

import concurrent.futures
import time
import uuid
from pathlib import Path

import pytest

from ops.embedded_redis import redis_answers
from ops.simulator.server import LOOPBACK, free_port
from ops.stack import ChildProcess
from producers.client import Client
from routing.errors import JobNotFound
from routing.keys import Keys
from routing.models import JobState
from tests.integration.harness import Beat, Sim, Worker, settings_for, stack_env, write_config


class SnapshotRedis:
    """redis-server keeping nothing but the snapshot a test asks for (SAVE): a SIGKILL and a
    start come back to exactly that moment, as a crash that lost the writes after it would."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: ChildProcess | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def start(self) -> None:
        self.starts += 1
        argv = ["redis-server", "--bind", LOOPBACK, "--port", str(self.port)]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(self.directory)]
        self.process = ChildProcess(f"redis-{self.starts}", argv, log_dir=self.directory)
        self.process.wait_until(lambda: redis_answers(self.url, 0.2), timeout_s=15, what="PING")

    def crash_to_snapshot(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.start()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


@pytest.fixture
def snapshot_redis(tmp_path):
    server = SnapshotRedis(tmp_path)
    server.start()
    yield server
    server.stop()


def stack(server: SnapshotRedis, tmp_path: Path, **env: str):
    primary = Sim("primary", key=f"sim-primary-{uuid.uuid4().hex}")
    config = write_config(tmp_path / "turnout.yaml", [primary])
    namespace = f"t-{uuid.uuid4().hex[:10]}"
    return primary, stack_env(server.url, namespace, config, [primary], **env), namespace


def test_a_run_lost_with_the_last_writes_runs_again_and_says_so(snapshot_redis, tmp_path):
    primary, env, _ = stack(snapshot_redis, tmp_path)
    client = Client(settings=settings_for(env))
    worker = Worker(env, tmp_path / "worker.log")
    try:
        handle = client.submit("finished, then forgotten")
        client.store.redis.save()  # the disk has the job queued, its message in the queue
        worker.start()
        first = handle.wait(timeout=60)
        assert first.state is JobState.SUCCEEDED
        client.close()

        snapshot_redis.crash_to_snapshot()  # the run's writes are gone
        client = Client(settings=settings_for(env))
        second = client.job(handle.job_id).wait(timeout=90)
        assert second.state is JobState.SUCCEEDED, "the job completes again"
        assert second.runs == 1, "the record knows only this run"
        assert primary.chat_requests() == 2, "the provider was called again: at-least-once"
        succeeded = [
            line
            for line in worker.log().splitlines()
            if f"run_job[{handle.job_id}] succeeded" in line
        ]
        assert len(succeeded) == 2, "the rerun is in the log, under the same job id"
    finally:
        client.close()
        worker.stop()
        primary.stop()


def test_a_record_whose_message_was_lost_is_sent_again_by_the_reconciler(snapshot_redis, tmp_path):
    primary, env, namespace = stack(
        snapshot_redis, tmp_path, TURNOUT_REQUEUE_AFTER="3", TURNOUT_RECONCILE_EVERY="1"
    )
    client = Client(settings=settings_for(env))
    worker = Worker(env, tmp_path / "worker.log")
    beat = Beat(env, tmp_path)
    keys = Keys(namespace)
    try:
        request, policy = client.prepare("my message will be lost")
        job_id = str(uuid.uuid4())
        client.store.create(job_id, request, policy)  # the producer's first half made it...
        client.store.redis.save()
        client._publish(job_id)  # ...its second did not, once Redis comes back
        client.close()
        snapshot_redis.crash_to_snapshot()

        client = Client(settings=settings_for(env))
        assert client.store.redis.llen(keys.queue_list(keys.queue)) == 0, "no message"
        assert client.job(job_id).state() is JobState.QUEUED, "the record is there"
        worker.start()
        beat.start()
        result = client.job(job_id).wait(timeout=90)
        assert result.state is JobState.SUCCEEDED
        assert result.runs == 1
        assert primary.chat_requests() == 1
        assert client.store.redis.hget(keys.reconciler_counts, "queued") == "1"
    finally:
        client.close()
        beat.stop()
        worker.stop()
        primary.stop()


def test_a_message_whose_record_was_lost_is_dropped_and_its_caller_told(snapshot_redis, tmp_path):
    primary, env, namespace = stack(snapshot_redis, tmp_path)
    client = Client(settings=settings_for(env))
    worker = Worker(env, tmp_path / "worker.log")
    keys = Keys(namespace)
    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        handle = client.submit("my record will be lost")
        waiting = pool.submit(handle.wait, 120)
        time.sleep(1)  # the caller is waiting
        client.store.redis.delete(keys.job(handle.job_id), keys.attempts(handle.job_id))
        lost_at = time.monotonic()
        with pytest.raises(JobNotFound):
            waiting.result(timeout=30)
        print(f"\nthe waiting caller got JobNotFound {time.monotonic() - lost_at:.1f}s after")
        worker.start()
        assert worker.process is not None
        worker.process.wait_for_log(
            f"job {handle.job_id} has no record", timeout_s=30, what="the dropped message"
        )
        time.sleep(2)
        assert client.store.redis.llen(keys.queue_list(keys.queue)) == 0
        assert client.store.redis.hlen(keys.unacked) == 0, "acknowledged, not redelivered"
        assert primary.chat_requests() == 0, "nothing ran"
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        client.close()
        worker.stop()
        primary.stop()
