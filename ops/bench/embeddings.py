"""``python -m ops.bench embeddings``: the submit-to-result time of one embeddings job at a time
through the whole stack (producer, Redis, worker, simulator), beside a raw httpx call to the same
0 ms simulator's ``/v1/embeddings``, in the same run. Embeddings differ from completions in what
travels back: a vector of 768 floats per text, written to the job record and read by the
caller, so the figure says what that costs beside a chat job's overhead (``overhead``)."""

from __future__ import annotations

import statistics
import time
from typing import Any

import httpx

from producers.client import Client

WARM_UP = 20


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(bench: Any, *, jobs: int, texts: int) -> dict[str, float]:
    """Raw calls first, then jobs (the worker is running): medians and p99s, in ms."""
    inputs = [f"text {n} to embed" for n in range(texts)]
    body = {"model": "sim-model", "input": inputs, "encoding_format": "float"}
    headers = {"authorization": f"Bearer {bench.env['BENCH_SIM_KEY']}"}
    raw: list[float] = []
    with httpx.Client() as http:
        for _ in range(jobs + WARM_UP):
            started = time.perf_counter()
            http.post(f"{bench.sim_url}/v1/embeddings", json=body, headers=headers).json()
            raw.append(time.perf_counter() - started)
    through: list[float] = []
    with Client(settings=bench.settings()) as client:
        for n in range(jobs + WARM_UP):
            started = time.perf_counter()
            result = client.embed([f"{n} {text}" for text in inputs], timeout=60)
            through.append(time.perf_counter() - started)
            if result.embeddings is None or len(result.embeddings) != texts:
                raise RuntimeError(f"job {result.job_id} answered no {texts} vectors")
    raw_ms = [s * 1000 for s in raw[WARM_UP:]]
    job_ms = [s * 1000 for s in through[WARM_UP:]]
    figures = {
        "raw_median_ms": statistics.median(raw_ms),
        "raw_p99_ms": _pct(raw_ms, 0.99),
        "job_median_ms": statistics.median(job_ms),
        "job_p99_ms": _pct(job_ms, 0.99),
    }
    print(f"\nembeddings overhead, {jobs} sequential jobs of {texts} text(s), 0 ms simulator")
    print(f"{'':24}{'median ms':>12}{'p99 ms':>10}")
    print(f"{'raw httpx call':24}{figures['raw_median_ms']:12.2f}{figures['raw_p99_ms']:10.2f}")
    print(
        f"{'turnout submit->result':24}{figures['job_median_ms']:12.2f}"
        f"{figures['job_p99_ms']:10.2f}"
    )
    print(
        f"ratio (median): {figures['job_median_ms'] / figures['raw_median_ms']:.1f}x a raw call; "
        f"overhead {figures['job_median_ms'] - figures['raw_median_ms']:.2f} ms per job"
    )
    return figures
