"""The fleet's router while its Redis answers within its short timeout, this process's own
otherwise (said in the log), the fleet's again once Redis is back. Never "always closed", never
a hang.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

import redis

from routing.errors import ErrorClass
from routing.fleet_router import FleetRouter
from routing.local_router import LocalRouter
from routing.routes import (
    DEFAULT_HOLD_S,
    Acquisition,
    Grant,
    Order,
    Route,
    Router,
    ScriptCall,
    Spent,
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
        if self.using_fleet:
            try:
                acquired = self.fleet.acquire(routes, order=order, tokens=tokens, hold_s=hold_s)
            except redis.RedisError as exc:
                self._fleet_failed(exc)
            else:
                if self._degraded:
                    with self._lock:
                        if self._degraded:
                            self._degraded = False
                            log.warning("breaker Redis answers again: back on the fleet's breaker")
                return acquired
        return self.local.acquire(routes, order=order, tokens=tokens, hold_s=hold_s)

    def record(
        self,
        grant: Grant,
        *,
        error_class: ErrorClass | None,
        latency_s: float,
        retry_after_s: float | None = None,
        token_delta: int = 0,
        spent: Spent | None = None,
        is_call: bool = True,
    ) -> Transition | None:
        if grant.source == "fleet":
            try:
                return self.fleet.record(
                    grant,
                    error_class=error_class,
                    latency_s=latency_s,
                    retry_after_s=retry_after_s,
                    token_delta=token_delta,
                    spent=spent,
                    is_call=is_call,
                )
            except redis.RedisError as exc:
                self._fleet_failed(exc)
        return self.local.record(
            grant,
            error_class=error_class,
            latency_s=latency_s,
            retry_after_s=retry_after_s,
            token_delta=token_delta,
            spent=spent,
            is_call=is_call,
        )

    def release(self, grant: Grant) -> None:
        if grant.source == "fleet":
            try:
                self.fleet.release(grant)
                return
            except redis.RedisError as exc:
                self._fleet_failed(exc)
        self.local.release(grant)


def fleet_record_call(
    router: Router,
    grant: Grant,
    *,
    latency_s: float,
    token_delta: int = 0,
    spent: Spent | None = None,
) -> ScriptCall | None:
    """A success's record as a script call to send along with the job's finish, when the grant
    came from the fleet and the fleet is in use; None when it must be recorded on its own."""
    fleet = router.fleet if isinstance(router, FallbackRouter) else router
    if grant.source != "fleet" or not isinstance(fleet, FleetRouter):
        return None
    if isinstance(router, FallbackRouter) and not router.using_fleet:
        return None
    return fleet.record_call(
        grant, error_class=None, latency_s=latency_s, token_delta=token_delta, spent=spent
    )
