"""Routers: which route a call may take now, and what its outcome did to that route.

``FleetRouter`` keeps every route's breaker, rate limits and statistics in Redis (two Lua scripts,
acquire_route and record_outcome), so one worker's failures stop the whole fleet from using a route.
``LocalRouter`` applies the same rules (routing.breaker) in this process only: it is what a worker
uses when the breaker's Redis does not answer. ``FallbackRouter`` joins them: the fleet while Redis
answers within its short timeout, this process's own otherwise (said in the log), the fleet again
once Redis is back. Never "always closed", never a hang.
"""

from __future__ import annotations

import bisect
import logging
import math
import random
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import redis
from redis.commands.core import Script

from routing.breaker import (
    BreakerSettings,
    BreakerState,
    Outcome,
    allow,
    breaker_outcome,
    record,
)
from routing.config import DeploymentConfig
from routing.errors import ErrorClass
from routing.keys import RouteKeys
from routing.redis_scripts import source
from routing.redis_text import as_text

log = logging.getLogger("turnout.breaker")

#: How candidates are ordered: as given, by measured latency, by calls in flight; ``probes``:
#: as given, and only for a half-open probe (a closed route is passed over as 'closed', taking
#: nothing: what a health check of an open breaker asks).
Order = Literal["given", "latency", "inflight", "probes"]
#: A call in flight is forgotten this long after it can have ended (its worker died without
#: recording it); a probe permit is held at least this much longer than its call can take, so a
#: slow probe never lets a second one through.
HOLD_MARGIN_S = 5.0
#: How long a call may take when the caller does not say.
DEFAULT_HOLD_S = 900.0


@dataclass(frozen=True)
class Route:
    """A deployment with one of its credentials: the unit a breaker and a rate limit guard."""

    deployment: DeploymentConfig
    #: The variable holding this route's key (one of the deployment's pool), if any.
    key_env: str | None
    breaker: BreakerSettings
    rpm: int | None = None
    tpm: int | None = None

    @property
    def id(self) -> str:
        pool = self.deployment.key_envs
        return self.deployment.id if len(pool) <= 1 else f"{self.deployment.id}/{self.key_env}"


@dataclass(frozen=True)
class Grant:
    route: Route
    attempt_id: str
    probe: bool
    source: Literal["fleet", "local"]


@dataclass(frozen=True)
class Skip:
    route: Route
    #: 'cooling', 'open', 'no_probe_permit', 'rate_limited' (or 'closed', with order 'probes')
    reason: str
    #: when the route may be available again (epoch seconds), if known
    retry_at: float | None
    #: why its breaker opened, when the reason is 'open'
    why: str = ""

    def describe(self) -> str:
        """``open (3 consecutive failures)``: the reason, and the breaker's own when it has one."""
        return f"{self.reason} ({self.why})" if self.why else self.reason


@dataclass(frozen=True)
class ScriptCall:
    """A registered Lua script with its keys and arguments, not yet sent."""

    script: Script
    keys: list[str]
    args: list[str | int | float]


@dataclass(frozen=True)
class Acquisition:
    grant: Grant | None
    skips: list[Skip] = field(default_factory=list)
    #: routes this acquisition moved from open to half-open (change "half_open")
    transitions: list[Transition] = field(default_factory=list)


@dataclass(frozen=True)
class Spent:
    """What a call cost, for the statistics (status, metrics): tokens from its usage, and the
    cost at the deployment's prices (None when unknown)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None


#: Upper bounds (seconds) of the latency histogram buckets the fleet counts calls in; the last
#: bucket (index len) is everything slower.
LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


def latency_bucket(latency_s: float) -> int:
    return bisect.bisect_left(LATENCY_BUCKETS_S, latency_s)


@dataclass(frozen=True)
class Transition:
    """A breaker changing state: opened, reopened, half_open, closed, failback (the first
    success after a close), cooled (a Retry-After). Worth a log line and an alert."""

    route_id: str
    change: str
    state: str
    reason: str


class Router(Protocol):
    def acquire(
        self,
        routes: Sequence[Route],
        *,
        order: Order,
        tokens: int,
        hold_s: float = DEFAULT_HOLD_S,
    ) -> Acquisition:
        """The first route (in ``order``) that may take a call now, and why the ones before it
        may not. Takes a probe permit, a rate-limit token and an in-flight slot for the call,
        which may take up to ``hold_s`` (its attempt timeout)."""
        ...

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
        """Apply the call's outcome to its route; returns the breaker transition, if any.
        ``is_call`` False: a health check standing in as a probe (moves the breaker, not the
        route's latency or statistics)."""
        ...

    def release(self, grant: Grant) -> None:
        """Give back a grant whose call never went out: its probe permit and in-flight slot."""
        ...


class FleetRouter:
    """The breaker, limits and statistics of every route, shared by every worker through Redis."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._prefix = prefix
        self._acquire = client.register_script(source("acquire_route"))
        self._record = client.register_script(source("record_outcome"))

    def acquire(
        self,
        routes: Sequence[Route],
        *,
        order: Order,
        tokens: int,
        hold_s: float = DEFAULT_HOLD_S,
    ) -> Acquisition:
        attempt_id = uuid.uuid4().hex
        keys: list[str] = []
        args: list[str | int | float] = [
            attempt_id,
            order,
            tokens,
            int((hold_s + HOLD_MARGIN_S) * 1000),
        ]
        for route in routes:
            route_keys = RouteKeys.under(self._prefix, route.id)
            keys += [route_keys.breaker, route_keys.probes, route_keys.inflight]
            args += [
                route.rpm or 0,
                route.tpm or 0,
                route.breaker.half_open_permits,
                int(_probe_ttl_s(route, hold_s) * 1000),
                1 if route.breaker.failback == "manual" else 0,
            ]
        reply = self._acquire(keys=keys, args=args)
        now = time.time()
        chosen, probe, half_opened = int(reply[0]), bool(int(reply[1])), int(reply[2])
        transitions = [
            Transition(routes[int(index) - 1].id, "half_open", "half_open", "cool-down over")
            for index in reply[3 : 3 + half_opened]
        ]
        skips = [
            Skip(
                routes[int(reply[i]) - 1],
                as_text(reply[i + 1]),
                now + int(reply[i + 2]) / 1000 if int(reply[i + 2]) else None,
                as_text(reply[i + 3]),
            )
            for i in range(3 + half_opened, len(reply), 4)
        ]
        grant = Grant(routes[chosen - 1], attempt_id, probe, "fleet") if chosen else None
        return Acquisition(grant, skips, transitions)

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
        call = self.record_call(
            grant,
            error_class=error_class,
            latency_s=latency_s,
            retry_after_s=retry_after_s,
            token_delta=token_delta,
            spent=spent,
            is_call=is_call,
        )
        return self.transition_of(grant, call.script(keys=call.keys, args=call.args))

    def record_call(
        self,
        grant: Grant,
        *,
        error_class: ErrorClass | None,
        latency_s: float,
        retry_after_s: float | None = None,
        token_delta: int = 0,
        spent: Spent | None = None,
        is_call: bool = True,
        outcome: Outcome | None = None,
    ) -> ScriptCall:
        """The record as a script call, for a caller that sends it in a pipeline with its own
        commands (a job's finish): one round trip for both."""
        settings = grant.route.breaker
        if outcome is None:
            outcome = breaker_outcome(
                error_class, latency_s=latency_s, retry_after_s=retry_after_s, settings=settings
            )
        route_keys = RouteKeys.under(self._prefix, grant.route.id)
        return ScriptCall(
            self._record,
            [
                route_keys.breaker,
                route_keys.probes,
                route_keys.inflight,
                route_keys.window,
                route_keys.minutes,
                route_keys.days,
                route_keys.totals,
            ],
            [
                grant.attempt_id,
                outcome.value,
                int(latency_s * 1000),
                int((retry_after_s or 0) * 1000),
                token_delta,
                random.random(),
                settings.consecutive_failures,
                settings.failure_rate,
                int(settings.window_s * 1000),
                settings.min_calls,
                int(settings.cooldown_s * 1000),
                int(settings.cooldown_max_s * 1000),
                settings.cooldown_jitter,
                int(settings.auth_cooldown_s * 1000),
                grant.route.tpm or 0,
                settings.close_after,
                1 if is_call else 0,
                error_class.value if error_class is not None else "",
                latency_bucket(latency_s),
                spent.prompt_tokens if spent else 0,
                spent.completion_tokens if spent else 0,
                repr(spent.cost_usd) if spent and spent.cost_usd is not None else "",
            ],
        )

    def release(self, grant: Grant) -> None:
        call = self.record_call(
            grant, error_class=None, latency_s=0.0, is_call=False, outcome=Outcome.IGNORE
        )
        call.script(keys=call.keys, args=call.args)

    @staticmethod
    def transition_of(grant: Grant, reply: Sequence[object]) -> Transition | None:
        """The breaker transition a RECORD_OUTCOME reply reports, if any."""
        change = as_text(reply[0])
        if not change:
            return None
        return Transition(grant.route.id, change, as_text(reply[1]), as_text(reply[2]))


@dataclass
class _LocalRoute:
    breaker: BreakerState = field(default_factory=BreakerState)
    latency_ms: float | None = None
    inflight: dict[str, float] = field(default_factory=dict)
    #: token buckets: name -> (tokens, at)
    buckets: dict[str, tuple[float, float]] = field(default_factory=dict)


class LocalRouter:
    """The same rules, for this process alone (the fallback when the fleet's Redis is away)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._routes: dict[str, _LocalRoute] = {}
        self._lock = threading.Lock()

    def _route(self, route: Route) -> _LocalRoute:
        return self._routes.setdefault(route.id, _LocalRoute())

    def acquire(
        self,
        routes: Sequence[Route],
        *,
        order: Order,
        tokens: int,
        hold_s: float = DEFAULT_HOLD_S,
    ) -> Acquisition:
        attempt_id = uuid.uuid4().hex
        with self._lock:
            now = self._clock()
            ordered = list(routes)
            if order == "latency":
                ordered.sort(key=lambda r: self._latency_score(self._route(r), now))
            elif order == "inflight":
                ordered.sort(key=lambda r: self._live_inflight(self._route(r), now))
            skips: list[Skip] = []
            transitions: list[Transition] = []
            for route in ordered:
                state = self._route(route)
                verdict = allow(
                    state.breaker,
                    route.breaker,
                    now,
                    attempt_id,
                    probe_ttl_s=_probe_ttl_s(route, hold_s),
                )
                if verdict.became_half_open:
                    transitions.append(
                        Transition(route.id, "half_open", "half_open", "cool-down over")
                    )
                if not verdict.allowed:
                    skips.append(Skip(route, verdict.reason, verdict.retry_at, verdict.why))
                    continue
                if order == "probes" and not verdict.probe:
                    skips.append(Skip(route, "closed", None))
                    continue
                limited = self._take_tokens(state, route, now, tokens)
                if limited is not None:
                    state.breaker.probes.pop(attempt_id, None)
                    skips.append(Skip(route, "rate_limited", limited))
                    continue
                state.inflight[attempt_id] = now + hold_s + HOLD_MARGIN_S
                grant = Grant(route, attempt_id, verdict.probe, "local")
                return Acquisition(grant, skips, transitions)
            return Acquisition(None, skips, transitions)

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
        settings = grant.route.breaker
        outcome = breaker_outcome(
            error_class, latency_s=latency_s, retry_after_s=retry_after_s, settings=settings
        )
        with self._lock:
            state = self._route(grant.route)
            state.inflight.pop(grant.attempt_id, None)
            if outcome is Outcome.SUCCESS and is_call:
                ms = latency_s * 1000
                state.latency_ms = (
                    ms if state.latency_ms is None else state.latency_ms * 0.8 + ms * 0.2
                )
            if grant.route.tpm and token_delta and "tpm" in state.buckets:
                left, at = state.buckets["tpm"]
                state.buckets["tpm"] = (min(grant.route.tpm, left - token_delta), at)
            change = record(
                state.breaker,
                settings,
                self._clock(),
                outcome,
                probe_id=grant.attempt_id,
                retry_after_s=retry_after_s,
                jitter=random.random(),
            )
            if change is None:
                return None
            return Transition(grant.route.id, change, state.breaker.state, state.breaker.reason)

    def release(self, grant: Grant) -> None:
        with self._lock:
            state = self._route(grant.route)
            state.inflight.pop(grant.attempt_id, None)
            record(
                state.breaker,
                grant.route.breaker,
                self._clock(),
                Outcome.IGNORE,
                probe_id=grant.attempt_id,
                retry_after_s=None,
                jitter=0.0,
            )

    def state_of(self, route_id: str) -> BreakerState | None:
        local = self._routes.get(route_id)
        return local.breaker if local else None

    @classmethod
    def _latency_score(cls, state: _LocalRoute, now: float) -> float:
        """Its average latency; a route never measured is tried once, not by every caller."""
        if state.latency_ms is not None:
            return state.latency_ms
        return 0.0 if cls._live_inflight(state, now) == 0 else math.inf

    @staticmethod
    def _live_inflight(state: _LocalRoute, now: float) -> int:
        state.inflight = {k: v for k, v in state.inflight.items() if v > now}
        return len(state.inflight)

    @staticmethod
    def _take_tokens(state: _LocalRoute, route: Route, now: float, tokens: int) -> float | None:
        """Take this call's rpm and tpm tokens; or say when there will be enough."""
        wanted = [("rpm", route.rpm, 1.0), ("tpm", route.tpm, float(min(tokens, route.tpm or 0)))]
        refilled: dict[str, float] = {}
        for name, per_minute, cost in wanted:
            if not per_minute:
                continue
            left, at = state.buckets.get(name, (float(per_minute), now))
            left = min(float(per_minute), left + (now - at) * per_minute / 60)
            if left < cost:
                return now + (cost - left) * 60 / per_minute
            refilled[name] = left - cost
        for name, left in refilled.items():
            state.buckets[name] = (left, now)
        return None


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


def _probe_ttl_s(route: Route, hold_s: float) -> float:
    return max(route.breaker.probe_ttl_s, hold_s + HOLD_MARGIN_S)
