"""Waiting for something another process or thread will make true, written once.

Every wait in the stack, the benchmarks and the tests (a worker's log saying it is ready, a port
that answers, a breaker that opens) is this loop: ask, sleep a little, give up at a deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll_until(
    predicate: Callable[[], T | None], *, timeout_s: float, interval_s: float = 0.05
) -> T | None:
    """The first truthy value ``predicate`` returns, or None once ``timeout_s`` has passed.

    It is asked at least once, and the deadline is looked at only after an answer, so a
    machine too loaded to ask in time still gets one last look.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        if found := predicate():
            return found
        if time.monotonic() > deadline:
            return None
        time.sleep(interval_s)
