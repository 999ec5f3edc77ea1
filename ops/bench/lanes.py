"""How long a person waits while a batch runs: priority lanes against one shared queue.

One worker process, a simulator that takes ``latency_ms`` a call; each round queues a bulk
batch of ``jobs`` (Client(lane="bulk"), all at once, as a script using Client would), then an
interactive producer submits one job a second until the batch has under ``tail`` messages left.
The figure is each interactive job's submit-to-start (the job record's ``started_at`` minus
``created_at``, both on Redis's clock). The round runs twice in the same run, the same stack:
``shared`` with TURNOUT_LANES=false (every job in the one jobs queue: the old behaviour) and
``lanes`` (interactive first). The batch's own throughput is reported beside it: lanes must
not cost the batch anything.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ops.redis_namespace import queue_length
from ops.stack import ChildProcess, worker_command
from producers.client import Client
from routing.settings import CoreSettings

if TYPE_CHECKING:
    from ops.bench.__main__ import Bench


#: Long enough for a worker process to start consuming on this machine (about 3 s).
WORKER_START_S = 6.0


@dataclass(frozen=True)
class LaneRound:
    mode: str
    waits_s: list[float]
    batch_s: float
    batch_jobs: int

    def line(self) -> str:
        waits = sorted(self.waits_s)
        p50 = statistics.median(waits)
        p99 = waits[min(len(waits) - 1, round(0.99 * (len(waits) - 1)))]
        return (
            f"{self.mode:>6}: interactive submit-to-start p50 {p50 * 1000:8.1f} ms, "
            f"p99 {p99 * 1000:8.1f} ms, max {waits[-1] * 1000:8.1f} ms (n={len(waits)}); "
            f"batch {self.batch_jobs} jobs in {self.batch_s:.1f}s "
            f"({self.batch_jobs / self.batch_s:.0f} jobs/s)"
        )


def _times(client: Client, job_ids: Sequence[str]) -> list[tuple[float, float, float]]:
    pipe = client.store.redis.pipeline(transaction=False)
    for job_id in job_ids:
        pipe.hmget(client.keys.job(job_id), ["created_at", "started_at", "finished_at"])
    return [
        (int(c) / 1000, int(s) / 1000, int(f) / 1000) if f else (0.0, 0.0, 0.0)
        for c, s, f in pipe.execute()
    ]


def _wait_all(client: Client, job_ids: Sequence[str], timeout_s: float) -> None:
    end = time.monotonic() + timeout_s
    for job_id in job_ids:
        client.job(job_id).wait(max(1.0, end - time.monotonic()))


def one_round(bench: Bench, *, lanes: bool, jobs: int, concurrency: int, tail: int) -> LaneRound:
    env = {**bench.env, "TURNOUT_LANES": "true" if lanes else "false"}
    settings = CoreSettings.model_validate(
        {k: v for k, v in env.items() if k.startswith(("TURNOUT_", "REDIS_URL"))}
    )
    command = worker_command(concurrency=concurrency, loglevel="warning", heartbeat=False)
    interactive: list[str] = []
    with (
        ChildProcess("worker-lanes", command, env=env, log_dir=bench.workdir, grace_s=60),
        Client(settings=settings, lane="bulk") as batch,
        Client(settings=settings) as web,
    ):
        time.sleep(WORKER_START_S)  # the worker consumes before the batch's clock starts
        bulk = [batch.submit(f"bulk {n}").job_id for n in range(jobs)]
        while queue_length(web.store.redis, web.keys) >= tail:
            interactive.append(web.submit("a person waits").job_id)
            time.sleep(1.0)
        _wait_all(web, bulk + interactive, timeout_s=600)
        bulk_times, people = _times(web, bulk), _times(web, interactive)
    batch_s = max(f for *_, f in bulk_times) - min(c for c, *_ in bulk_times)
    return LaneRound(
        "lanes" if lanes else "shared",
        [started - created for created, started, _ in people],
        batch_s,
        jobs,
    )


def run_rounds(
    bench: Bench, *, jobs: int, concurrency: int, tail: int, rounds: int
) -> list[LaneRound]:
    """``rounds`` pairs, shared then lanes, so drift in the machine's load hits both."""
    done: list[LaneRound] = []
    for _ in range(rounds):
        for lanes in (False, True):
            result = one_round(bench, lanes=lanes, jobs=jobs, concurrency=concurrency, tail=tail)
            done.append(result)
            print(result.line(), flush=True)
    return done
