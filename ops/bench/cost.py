"""What one job costs, beside Celery's floor: ``python -m ops.bench cost``.

One worker process drains N queued jobs against a simulator that takes the provider's latency;
beside it, in the same run and on the same private Redis, the same worker configuration drains
N Celery tasks that only sleep that long (ops/bench/floor_app.py). For each drain: jobs/s, the
worker's CPU per job (from /proc of the worker process), Redis's CPU per job (INFO cpu:
used_cpu_sys + used_cpu_user, before and after) and Redis's commands per job (INFO
commandstats, before and after, per command: the commands a script runs count too).

The Redis is one this benchmark starts (redis-server on a free port), never the one at
REDIS_URL: other clients' load on a shared Redis would land in its CPU and command counts.
What the benchmark itself sends while a drain runs (the INFO snapshots, and the one command per
poll that asks whether the drain is done) is taken out of the counts.

``--tree PATH`` adds a variant: turnout's worker imported from another checkout (PYTHONPATH), in
the same rounds, interleaved, so a change is measured before and after in one run.
"""

from __future__ import annotations

import os
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

import redis

#: The drain's own commands (its INFO snapshots), never a job's.
_BENCH_COMMANDS = frozenset({"info"})


@dataclass(frozen=True)
class RedisSnapshot:
    cpu_s: float
    calls: Counter[str]

    @classmethod
    def take(cls, client: redis.Redis) -> RedisSnapshot:
        pipe = client.pipeline(transaction=False)
        pipe.info("cpu")
        pipe.info("commandstats")
        cpu, stats = pipe.execute()
        calls: Counter[str] = Counter()
        for name, row in stats.items():
            command = name.removeprefix("cmdstat_").lower()
            if command not in _BENCH_COMMANDS:
                calls[command] = int(row["calls"])
        return cls(float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]), calls)


@dataclass
class Drain:
    """One drain's figures: per job, but for ``jobs_s`` and ``s``."""

    jobs_s: float
    cpu_ms: float
    redis_cpu_ms: float
    commands: dict[str, float]
    s: float

    @property
    def commands_total(self) -> float:
        return sum(self.commands.values())


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of a process so far (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_drain(
    start_worker: Callable[[], AbstractContextManager[int]],
    client: redis.Redis,
    queue: str,
    total: int,
    done: Callable[[], bool],
    poll_command: str,
) -> Drain:
    """Start a worker (``start_worker`` yields its PID) on a queue of ``total`` messages; measure
    from its first message until ``done()``, which must send exactly one ``poll_command``."""
    polls = 0
    with start_worker() as pid:
        while client.llen(queue) >= total:
            time.sleep(0.002)
        started, cpu0 = time.perf_counter(), cpu_seconds(pid)
        before = RedisSnapshot.take(client)
        while True:
            polls += 1
            if done():
                break
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
        cpu1 = cpu_seconds(pid)
        after = RedisSnapshot.take(client)
    calls = after.calls - before.calls
    calls[poll_command] -= polls
    return Drain(
        jobs_s=total / elapsed,
        cpu_ms=(cpu1 - cpu0) * 1000 / total,
        redis_cpu_ms=(after.cpu_s - before.cpu_s) * 1000 / total,
        commands={name: n / total for name, n in calls.items() if n > 0},
        s=elapsed,
    )


@dataclass
class Variant:
    """One side of the comparison: its drains, by concurrency."""

    name: str
    drains: dict[int, list[Drain]] = field(default_factory=dict)

    def median(self, concurrency: int, figure: str) -> float:
        return statistics.median(float(getattr(d, figure)) for d in self.drains[concurrency])

    def commands(self, concurrency: int) -> dict[str, float]:
        """Commands per job, per command: the median over the rounds."""
        drains = self.drains[concurrency]
        names = {name for d in drains for name in d.commands}
        return {
            name: statistics.median(d.commands.get(name, 0.0) for d in drains) for name in names
        }


FIGURES = (
    ("jobs_s", "jobs/s", "{:.0f}"),
    ("cpu_ms", "worker CPU ms/job", "{:.2f}"),
    ("redis_cpu_ms", "Redis CPU ms/job", "{:.3f}"),
    ("commands_total", "Redis commands/job", "{:.1f}"),
)


def report(variants: list[Variant], floor: Variant, concurrencies: list[int]) -> Iterator[str]:
    """The tables: each figure's median per variant and concurrency, its ratio to the floor;
    then Redis's commands per job, per command."""
    heads = [f"-c{c}" for c in concurrencies]
    yield f"{'median of rounds':34}" + "".join(f"{h:>12}" for h in heads)
    for figure, label, fmt in FIGURES:
        for variant in [floor, *variants]:
            cells = [fmt.format(variant.median(c, figure)) for c in concurrencies]
            yield f"{label + ', ' + variant.name:34}" + "".join(f"{x:>12}" for x in cells)
        for variant in variants:
            ratios = [
                f"{variant.median(c, figure) / floor.median(c, figure):.2f}x" for c in concurrencies
            ]
            yield f"{'  ' + variant.name + ' / floor':34}" + "".join(f"{x:>12}" for x in ratios)
    for c in concurrencies:
        yield ""
        yield f"Redis commands per job at -c{c} (median of rounds; script commands included)"
        columns = [floor, *variants]
        tables = [v.commands(c) for v in columns]
        names = sorted(
            {n for t in tables for n in t}, key=lambda n: -max(t.get(n, 0) for t in tables)
        )
        yield f"{'command':16}" + "".join(f"{v.name[:22]:>24}" for v in columns)
        for name in names:
            yield f"{name:16}" + "".join(f"{t.get(name, 0.0):24.2f}" for t in tables)
