"""A process's own router: the breaker's rules (routing.breaker) and the rate limits, applied in
this process only. What a worker uses when the fleet's Redis does not answer.
"""

from __future__ import annotations

import math
import random
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from routing.breaker import BreakerState, Outcome, allow, record
from routing.routes import (
    DEFAULT_HOLD_S,
    HOLD_MARGIN_S,
    Acquisition,
    CallOutcome,
    Grant,
    Order,
    Rider,
    Route,
    Skip,
    Transition,
    probe_ttl_s,
)


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
        return self._acquire(routes, order, tokens, hold_s, probes_only=False)

    def acquire_probe(self, route: Route, *, hold_s: float = DEFAULT_HOLD_S) -> Acquisition:
        return self._acquire([route], "given", 0, hold_s, probes_only=True)

    def _acquire(
        self,
        routes: Sequence[Route],
        order: Order,
        tokens: int,
        hold_s: float,
        *,
        probes_only: bool,
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
                    probe_ttl_s=probe_ttl_s(route, hold_s),
                )
                if verdict.became_half_open:
                    transitions.append(
                        Transition(route.id, "half_open", "half_open", "cool-down over")
                    )
                if not verdict.allowed:
                    assert verdict.reason, "a refusal says why"
                    skips.append(
                        Skip(
                            route,
                            verdict.reason,
                            verdict.retry_at,
                            verdict.why,
                            verdict.unreachable,
                        )
                    )
                    continue
                if probes_only and not verdict.probe:
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

    def record(self, grant: Grant, outcome: CallOutcome) -> Transition | None:
        settings = grant.route.breaker
        counts_as = outcome.breaker_outcome(settings)
        token_delta = outcome.token_delta
        with self._lock:
            state = self._route(grant.route)
            state.inflight.pop(grant.attempt_id, None)
            if counts_as is Outcome.SUCCESS and outcome.is_call:
                ms = outcome.latency_s * 1000
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
                counts_as,
                probe_id=grant.attempt_id,
                retry_after_s=outcome.retry_after_s,
                jitter=random.random(),
                unreachable=outcome.unreachable,
                open_reason=outcome.open_reason,
            )
            if change is None:
                return None
            return Transition(grant.route.id, change, state.breaker.state, state.breaker.reason)

    def rider(self, grant: Grant, outcome: CallOutcome) -> Rider | None:
        """None: this process's breaker is no Redis script; its records are sent by record."""
        return None

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
        tpm_cost = float(min(tokens, (route.tpm or 0) * (1 - route.held)))
        wanted = [("rpm", route.rpm, 1.0), ("tpm", route.tpm, tpm_cost)]
        refilled: dict[str, float] = {}
        for name, per_minute, cost in wanted:
            if not per_minute:
                continue
            left, at = state.buckets.get(name, (float(per_minute), now))
            left = min(float(per_minute), left + (now - at) * per_minute / 60)
            kept = per_minute * route.held  # other lanes' reserve (DeploymentConfig.reserve)
            if left < cost + kept:
                return now + (cost + kept - left) * 60 / per_minute
            refilled[name] = left - cost
        for name, left in refilled.items():
            state.buckets[name] = (left, now)
        return None
