"""The fleet's router: every route's breaker, rate limits and statistics in Redis (two Lua
scripts, acquire_route and record_outcome in routing/scripts/), so one worker's failures stop
the whole fleet from using a route.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Sequence
from functools import partial
from typing import Literal

import redis

from routing.breaker import Outcome
from routing.keys import LATENCY_SAMPLES, KeyUsageKeys, RouteKeys
from routing.redis_scripts import source
from routing.redis_text import as_literal, as_text
from routing.routes import (
    BREAKER_STATES,
    DEFAULT_HOLD_S,
    HOLD_MARGIN_S,
    SKIP_CAUSES,
    TRANSITION_CHANGES,
    Acquisition,
    CallOutcome,
    Grant,
    Order,
    Rider,
    Route,
    ScriptCall,
    Skip,
    Transition,
    latency_bucket,
    probe_ttl_s,
)

#: The orders acquire_route.lua knows: a router's, and ``probes`` (as given, half-open probes only).
ScriptOrder = Order | Literal["probes"]


class FleetRouter:
    """The breaker, limits and statistics of every route, shared by every worker through Redis.

    ``shares_job_store_redis``: this Redis is also the job store's, so a record can ride a job's
    finish (``rider``): 3 round trips for a one-call job instead of 4. ``key_usage_prefix`` and
    ``key_usage_ids`` (Keys): where a call's record also counts its key's usage (a call whose
    outcome names its key), in the same script run.
    """

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        *,
        shares_job_store_redis: bool = False,
        key_usage_prefix: str = "",
        key_usage_ids: str = "",
    ) -> None:
        self._prefix = prefix
        self._key_usage_prefix = key_usage_prefix
        self._key_usage_ids = key_usage_ids
        self._acquire = client.register_script(source("acquire_route"))
        self._record = client.register_script(source("record_outcome"))
        self._shares_job_store_redis = shares_job_store_redis

    def acquire(
        self,
        routes: Sequence[Route],
        *,
        order: Order,
        tokens: int,
        hold_s: float = DEFAULT_HOLD_S,
    ) -> Acquisition:
        return self._acquire_in(routes, order=order, tokens=tokens, hold_s=hold_s)

    def acquire_probe(self, route: Route, *, hold_s: float = DEFAULT_HOLD_S) -> Acquisition:
        return self._acquire_in([route], order="probes", tokens=0, hold_s=hold_s)

    def _acquire_in(
        self, routes: Sequence[Route], *, order: ScriptOrder, tokens: int, hold_s: float
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
                int(probe_ttl_s(route, hold_s) * 1000),
                1 if route.breaker.failback == "manual" else 0,
                route.held,
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
                as_literal(reply[i + 1], SKIP_CAUSES),
                now + int(reply[i + 2]) / 1000 if int(reply[i + 2]) else None,
                as_text(reply[i + 3]),
                as_text(reply[i + 4]),
            )
            for i in range(3 + half_opened, len(reply), 5)
        ]
        grant = Grant(routes[chosen - 1], attempt_id, probe, "fleet") if chosen else None
        return Acquisition(grant, skips, transitions)

    def record(self, grant: Grant, outcome: CallOutcome) -> Transition | None:
        call = self.record_call(grant, outcome)
        return self.transition_of(grant, call.script(keys=call.keys, args=call.args))

    def rider(self, grant: Grant, outcome: CallOutcome) -> Rider | None:
        if not self._shares_job_store_redis:
            return None
        return Rider(self.record_call(grant, outcome), partial(self.transition_of, grant))

    def record_call(
        self, grant: Grant, call_outcome: CallOutcome, *, outcome: Outcome | None = None
    ) -> ScriptCall:
        """The record as a script call, not yet sent; ``outcome`` overrides what the call counts
        as for the breaker (a release counts for nothing)."""
        settings = grant.route.breaker
        error_class, latency_s = call_outcome.error_class, call_outcome.latency_s
        retry_after_s, token_delta = call_outcome.retry_after_s, call_outcome.token_delta
        spent, is_call = call_outcome.spent, call_outcome.is_call
        if outcome is None:
            outcome = call_outcome.breaker_outcome(settings)
        route_keys = RouteKeys.under(self._prefix, grant.route.id)
        keys = [
            route_keys.breaker,
            route_keys.probes,
            route_keys.inflight,
            route_keys.window,
            route_keys.minutes,
            route_keys.days,
            route_keys.totals,
            route_keys.latencies,
        ]
        args: list[str | int | float] = [
            grant.attempt_id,
            outcome.value,
            round(latency_s * 1000, 3),  # fractions kept: a local call takes under 1 ms
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
            LATENCY_SAMPLES,
            call_outcome.unreachable,
            call_outcome.open_reason,
        ]
        key = call_outcome.key
        if key is not None and is_call and self._key_usage_prefix:
            usage = KeyUsageKeys.under(self._key_usage_prefix, key.key_id)
            keys += [usage.totals, usage.days, self._key_usage_ids]
            args += [key.key_id, key.masked]
        return ScriptCall(self._record, keys, args)

    def release(self, grant: Grant) -> None:
        call = self.record_call(
            grant,
            CallOutcome(error_class=None, latency_s=0.0, is_call=False),
            outcome=Outcome.IGNORE,
        )
        call.script(keys=call.keys, args=call.args)

    @staticmethod
    def transition_of(grant: Grant, reply: Sequence[object]) -> Transition | None:
        """The breaker transition a record_outcome.lua reply reports, if any."""
        if not as_text(reply[0]):
            return None
        return Transition(
            grant.route.id,
            as_literal(reply[0], TRANSITION_CHANGES),
            as_literal(reply[1], BREAKER_STATES),
            as_text(reply[2]),
        )
