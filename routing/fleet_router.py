"""The fleet's router: every route's breaker, rate limits and statistics in Redis (two Lua
scripts, routing.fleet_scripts), so one worker's failures stop the whole fleet from using a route.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Sequence

import redis

from routing.breaker import Outcome, breaker_outcome
from routing.errors import ErrorClass
from routing.fleet_scripts import ACQUIRE_ROUTE, RECORD_OUTCOME
from routing.redis_text import as_text
from routing.routes import (
    DEFAULT_HOLD_S,
    HOLD_MARGIN_S,
    Acquisition,
    Grant,
    Order,
    Route,
    ScriptCall,
    Skip,
    Spent,
    Transition,
    latency_bucket,
    probe_ttl_s,
)


class FleetRouter:
    """The breaker, limits and statistics of every route, shared by every worker through Redis."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._prefix = prefix
        self._acquire = client.register_script(ACQUIRE_ROUTE)
        self._record = client.register_script(RECORD_OUTCOME)

    def acquire(
        self,
        routes: Sequence[Route],
        *,
        order: Order,
        tokens: int,
        hold_s: float = DEFAULT_HOLD_S,
    ) -> Acquisition:
        attempt_id = uuid.uuid4().hex
        args: list[str | int | float] = [
            self._prefix,
            attempt_id,
            order,
            tokens,
            int((hold_s + HOLD_MARGIN_S) * 1000),
        ]
        for route in routes:
            args += [
                route.id,
                route.rpm or 0,
                route.tpm or 0,
                route.breaker.half_open_permits,
                int(probe_ttl_s(route, hold_s) * 1000),
                1 if route.breaker.failback == "manual" else 0,
            ]
        reply = self._acquire(args=args)
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
        return ScriptCall(
            self._record,
            [],
            [
                self._prefix,
                grant.route.id,
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
