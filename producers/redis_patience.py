"""How ``turnout batch`` rides out Redis going away (a restart, a failover, a network blip).

An unattended run should not exit 1 and need a rerun because Redis restarted. So a submit or a
wait that fails because Redis cannot be reached is tried again, with backoff, until Redis has
been gone for ``budget_s`` (60 s unless ``--redis-patience`` says otherwise). That is safe
because every batch line submits with its idempotency key: submitting again returns the job
the first submit stored (and sends a still-queued job's message again), never a second job.

Backoff after the n-th consecutive failure (n from 0): ``min(cap_s, base_s * 2**n)`` seconds,
times a random factor in [0.5, 1] so 32 waiting lines do not reconnect in step. The budget is
counted from the first failure of a streak; any success ends the streak.

Only Redis being unreachable is ridden out (connection refused or reset, a timeout, Redis
still loading its data after a restart, kombu failing to reach the broker); any other error
ends the run as before.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import redis
from kombu.exceptions import OperationalError

T = TypeVar("T")

#: Errors that mean "Redis cannot be reached now", not "this request is wrong".
_OUTAGES: tuple[type[BaseException], ...] = (
    redis.ConnectionError,  # also BusyLoadingError: Redis replaying its AOF after a restart
    redis.TimeoutError,
    OperationalError,  # kombu's publish when the broker is down
    ConnectionError,
)


def is_redis_outage(exc: BaseException) -> bool:
    """True when ``exc``, or what it was raised from (SubmitError wraps), is Redis away."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, _OUTAGES) or _torn_connection(seen):
            return True
        seen = seen.__cause__
    return False


def _torn_connection(exc: BaseException) -> bool:
    """redis-py's asyncio connection, dropped by one coroutine while another writes on it,
    raises ``AttributeError: 'NoneType' object has no attribute 'writelines'`` from inside its
    own module (seen here when Redis is killed mid-run): that is Redis going away too. Only an
    AttributeError raised in redis-py's own code counts, so one of ours is never hidden."""
    if not isinstance(exc, AttributeError):
        return False
    frame = exc.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    return frame is not None and str(frame.tb_frame.f_globals.get("__name__", "")).startswith(
        "redis."
    )


@dataclass(frozen=True, kw_only=True)
class RedisPatience:
    #: Seconds of consecutive failures ridden out before the run gives up; 0 never retries.
    budget_s: float = 60.0
    base_s: float = 0.25
    cap_s: float = 5.0

    def delay(self, failures: int) -> float:
        """The pause before trying again after ``failures`` consecutive ones (from 1)."""
        backoff: float = self.base_s * 2 ** max(0, failures - 1)
        return min(self.cap_s, backoff) * random.uniform(0.5, 1)

    async def run(
        self,
        operation: Callable[[], Awaitable[T]],
        *,
        on_outage: Callable[[BaseException], None] = lambda exc: None,
    ) -> T:
        """``operation()``, called again while Redis is away and the budget lasts."""
        first_failure: float | None = None
        failures = 0
        while True:
            try:
                return await operation()
            except Exception as exc:
                if not is_redis_outage(exc):
                    raise
                now = time.monotonic()
                first_failure = now if first_failure is None else first_failure
                failures += 1
                if now - first_failure >= self.budget_s:
                    raise
                on_outage(exc)
                await asyncio.sleep(min(self.delay(failures), self.budget_s))
