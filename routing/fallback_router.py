"""The fleet's router while its Redis answers within its short timeout, this process's own
otherwise (said in the log), the fleet's again once Redis is back. Never "always closed", never
a hang.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

import redis

from routing.local_router import LocalRouter
from routing.routes import (
    DEFAULT_HOLD_S,
    Acquisition,
    CallOutcome,
    Grant,
    Order,
    Rider,
    Route,
    Router,
    Transition,
)

log = logging.getLogger("turnout.breaker")


class FallbackRouter:
    """The fleet's router while its Redis answers; this process's own while it does not."""

    def __init__(self, fleet: Router, local: LocalRouter, *, retry_after_s: float = 5.0) -> None:
        self.fleet = fleet
        self.local = local
        self._retry_after_s = retry_after_s
        self._down_until = 0.0
        self._degraded = False
        self._lock = threading.Lock()

    @property
    def using_fleet(self) -> bool:
        return time.monotonic() >= self._down_until

    def _fleet_failed(self, exc: Exception) -> None:
        """Fall back for a while. An unreachable Redis is an expected incident; any other Redis
        error (a script failing, say) is a bug, said as such, but still never fails a job."""
        with self._lock:
            if not self._degraded:
                self._degraded = True
                unreachable = isinstance(
                    exc, redis.ConnectionError | redis.TimeoutError | redis.ReadOnlyError
                )
                if unreachable:
                    log.warning(
                        "breaker Redis unreachable (%s): this worker uses its own per-process "
                        "breaker until it answers again",
                        type(exc).__name__,
                    )
                else:
                    log.error(
                        "breaker Redis failed (%s: %s): this worker uses its own per-process "
                        "breaker until the fleet's works again",
                        type(exc).__name__,
                        exc,
                    )
            self._down_until = time.monotonic() + self._retry_after_s

    def acquire(
        self,
        routes: Sequence[Route],
        *,
        order: Order,
        tokens: int,
        hold_s: float = DEFAULT_HOLD_S,
    ) -> Acquisition:
        return self._acquire_from(
            lambda router: router.acquire(routes, order=order, tokens=tokens, hold_s=hold_s)
        )

    def acquire_probe(self, route: Route, *, hold_s: float = DEFAULT_HOLD_S) -> Acquisition:
        return self._acquire_from(lambda router: router.acquire_probe(route, hold_s=hold_s))

    def _acquire_from(self, acquire: Callable[[Router], Acquisition]) -> Acquisition:
        """The fleet's answer while it gives one; this process's own otherwise."""
        if self.using_fleet:
            try:
                acquired = acquire(self.fleet)
            except redis.RedisError as exc:
                self._fleet_failed(exc)
            else:
                if self._degraded:
                    with self._lock:
                        if self._degraded:
                            self._degraded = False
                            log.warning("breaker Redis answers again: back on the fleet's breaker")
                return acquired
        return acquire(self.local)

    def record(self, grant: Grant, outcome: CallOutcome) -> Transition | None:
        if grant.source == "fleet":
            try:
                return self.fleet.record(grant, outcome)
            except redis.RedisError as exc:
                self._fleet_failed(exc)
        return self.local.record(grant, outcome)

    def rider(self, grant: Grant, outcome: CallOutcome) -> Rider | None:
        """The fleet's rider for a grant it gave, while it is in use; None otherwise (this
        process's breaker, or a fleet that stopped answering since: ``record`` falls back)."""
        if grant.source != "fleet" or not self.using_fleet:
            return None
        return self.fleet.rider(grant, outcome)

    def release(self, grant: Grant) -> None:
        if grant.source == "fleet":
            try:
                self.fleet.release(grant)
                return
            except redis.RedisError as exc:
                self._fleet_failed(exc)
        self.local.release(grant)
