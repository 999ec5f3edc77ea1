"""What routers trade in: routes, the grants and skips of an acquisition, a call's transition, and
the ``Router`` protocol every router keeps (routing.fleet_router, routing.local_router,
routing.fallback_router).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, get_args

from redis.commands.core import Script

from routing.breaker import (
    BreakerChange,
    BreakerSettings,
    BreakerStateName,
    Outcome,
    breaker_outcome,
)
from routing.config import DeploymentConfig
from routing.errors import AddressUnreachable, ErrorClass, ProviderError
from routing.models import RouteRefusal

#: How candidates are ordered: as given, by measured latency, by calls in flight.
Order = Literal["given", "latency", "inflight"]
#: Why an acquisition passed a route over: a refusal, or (``acquire_probe`` only) "closed", a
#: route that needs no probe.
SkipCause = Literal[RouteRefusal, "closed"]
#: A breaker's change of state: a call's (BreakerChange), an acquisition's move to half-open,
#: or an operator's (routing.fleet_admin).
TransitionChange = Literal[BreakerChange, "half_open", "forced_open", "forced_closed", "reset"]
#: Each type's strings, for reading them from a script's reply (routing.redis_text.as_literal).
SKIP_CAUSES: tuple[SkipCause, ...] = get_args(SkipCause)
TRANSITION_CHANGES: tuple[TransitionChange, ...] = get_args(TransitionChange)
BREAKER_STATES: tuple[BreakerStateName, ...] = get_args(BreakerStateName)
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
    #: The share of rpm/tpm this call must leave for other lanes (DeploymentConfig.reserve).
    held: float = 0.0

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
    reason: SkipCause
    #: when the route may be available again (epoch seconds), if known
    retry_at: float | None
    #: why its breaker opened, when the reason is 'open'
    why: str = ""
    #: open because the calls that opened it found nothing at its address: what the last one
    #: said ("connection refused at host:port: ..."); it does not heal by itself
    unreachable: str = ""

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
    change: TransitionChange
    state: BreakerStateName
    reason: str


@dataclass(frozen=True)
class KeyLabel:
    """Which API key a call carried, as the fleet may know it: its id (``env:NAME``,
    ``store:NAME@slot``) and mask (``…`` and its last 4 characters), never the key."""

    key_id: str
    masked: str


@dataclass(frozen=True, kw_only=True)
class CallOutcome:
    """What one call did to its route: the one value every router records, whether at once
    (``Router.record``) or riding another write (``Router.rider``)."""

    #: None: the call succeeded
    error_class: ErrorClass | None
    latency_s: float
    #: the provider's Retry-After, when it named one
    retry_after_s: float | None = None
    #: tokens the call used beyond (negative: short of) what its acquisition took
    token_delta: int = 0
    spent: Spent | None = None
    #: False: a health check standing in as a probe (it moves the breaker, not the route's
    #: latency or statistics)
    is_call: bool = True
    #: False: the call failed for a reason of the worker's (ProviderError.route_at_fault), so
    #: its breaker counts it for nothing
    route_at_fault: bool = True
    #: the call found nothing at the route's address (routing.errors.AddressUnreachable): what
    #: it said; "" otherwise. The breaker remembers it when such failures open it.
    unreachable: str = ""
    #: the key the call carried, for its usage per key (None: not counted per key)
    key: KeyLabel | None = None
    #: why a call that opens the breaker at once opens it, when not a rejected credential
    #: (ProviderError.open_reason: a wrong address); "" otherwise
    open_reason: str = ""

    @classmethod
    def of(
        cls,
        error: ProviderError | None,
        *,
        latency_s: float,
        token_delta: int = 0,
        spent: Spent | None = None,
        is_call: bool = True,
        key: KeyLabel | None = None,
    ) -> CallOutcome:
        """The outcome of a call that raised ``error`` (None: it succeeded)."""
        return cls(
            error_class=error.error_class if error else None,
            latency_s=latency_s,
            retry_after_s=error.retry_after_s if error else None,
            token_delta=token_delta,
            spent=spent,
            is_call=is_call,
            route_at_fault=error.route_at_fault if error else True,
            unreachable=error.message if isinstance(error, AddressUnreachable) else "",
            key=key,
            open_reason=error.open_reason if error else "",
        )

    def breaker_outcome(self, settings: BreakerSettings) -> Outcome:
        """What this outcome counts as for a breaker with these settings."""
        if not self.route_at_fault:
            return Outcome.IGNORE
        return breaker_outcome(
            self.error_class,
            latency_s=self.latency_s,
            retry_after_s=self.retry_after_s,
            settings=settings,
        )


@dataclass(frozen=True)
class Rider:
    """A record sent in the caller's own pipeline (a job's finish) instead of on its own: one
    round trip for both."""

    call: ScriptCall
    #: The breaker transition the call's reply reports, if any.
    transition_of: Callable[[Any], Transition | None]


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

    def acquire_probe(self, route: Route, *, hold_s: float = DEFAULT_HOLD_S) -> Acquisition:
        """The route's half-open probe permit, when its breaker is open past its cool-down (or
        half-open); a closed route is passed over as 'closed' and takes nothing. What a health
        check of an open breaker asks."""
        ...

    def record(self, grant: Grant, outcome: CallOutcome) -> Transition | None:
        """Apply the call's outcome to its route; returns the breaker transition, if any."""
        ...

    def rider(self, grant: Grant, outcome: CallOutcome) -> Rider | None:
        """The record as a script call the caller sends in its own pipeline on the job store's
        Redis, when this router keeps the grant's route there; None when it cannot ride and
        must be sent by ``record``. The one place that decides it."""
        ...

    def release(self, grant: Grant) -> None:
        """Give back a grant whose call never went out: its probe permit and in-flight slot."""
        ...


def probe_ttl_s(route: Route, hold_s: float) -> float:
    """How long a probe permit is held: the route's own TTL, or longer than its call can take."""
    return max(route.breaker.probe_ttl_s, hold_s + HOLD_MARGIN_S)
