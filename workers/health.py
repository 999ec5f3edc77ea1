"""Beat's health checks (routing.health says what they mean): which routes are due, checking
them, and what their results do to routing and to the breaker.

A check of a route whose breaker is open past its cool-down (or half-open) takes the route's
half-open probe permit, like a job would, and records its outcome on the breaker: ``close_after``
good checks in a row close it and jobs return to the route (failback), one bad check re-opens it
for longer. Other checks only record health. Every check's result is kept in Redis for
``turnout status`` and the exporter.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import redis

from routing.config import TurnoutConfig
from routing.errors import ErrorClass, Incomplete, InvalidResponse, ProviderError
from routing.health import HealthSettings
from routing.keys import RouteKeys
from routing.models import CompletionRequest
from routing.redis_scripts import source
from routing.redis_text import as_text
from routing.routes import CallOutcome, Grant, Route, Router, Transition
from workers.exchange import exchange
from workers.http import HttpTransport
from workers.providers.base import ProviderAdapter
from workers.providers.wrong_address import check_address
from workers.reply_budget import release_body

log = logging.getLogger("turnout.health")

#: Checks run at once by one health_check task.
PARALLEL_CHECKS = 8
#: The request of a ``probe: completion`` check.
PING = CompletionRequest.from_prompt("ping", max_tokens=1)


@dataclass(frozen=True)
class HealthResult:
    route_id: str
    ok: bool
    latency_ms: float
    error_class: ErrorClass | None
    detail: str
    #: the check was the route's half-open probe (its outcome moved the breaker)
    probe: bool
    #: the route's health after this check: 'ok' or 'failing'; 'unchecked' when the worker
    #: could not take the reply (nothing was learnt, nothing recorded)
    health: str


class HealthChecker:
    def __init__(
        self,
        config: TurnoutConfig,
        routes: Sequence[Route],
        *,
        adapters: Mapping[str, ProviderAdapter],
        transport: HttpTransport,
        router: Router,
        client: redis.Redis,
        prefix: str,
        redact: Callable[[str], str],
        on_transition: Callable[[Transition], None],
    ) -> None:
        self.config = config
        self.routes = [r for r in routes if config.health_for(r.deployment).enabled]
        self.adapters = adapters
        self.transport = transport
        self.router = router
        self.client = client
        self.prefix = prefix
        self.redact = redact
        self.on_transition = on_transition
        self._claim = client.register_script(source("claim_health_checks"))
        self._record = client.register_script(source("record_health"))

    def settings_of(self, route: Route) -> HealthSettings:
        return self.config.health_for(route.deployment)

    def claim_due(self) -> list[Route]:
        """The routes this caller checks now: each route once per interval, fleet-wide."""
        if not self.routes:
            return []
        claimed = self._claim(
            keys=[RouteKeys.under(self.prefix, r.id).health_check_locks for r in self.routes],
            args=[int(self.settings_of(r).every_s * 1000) for r in self.routes],
        )
        return [self.routes[int(index) - 1] for index in claimed]

    def run(self) -> list[HealthResult]:
        """Check every route that is due; returns what was found."""
        due = self.claim_due()
        if not due:
            return []
        with ThreadPoolExecutor(max_workers=min(PARALLEL_CHECKS, len(due))) as pool:
            return list(pool.map(self.check, due))

    def check(self, route: Route) -> HealthResult:
        settings = self.settings_of(route)
        grant = self._probe_permit(route, settings)
        started = time.monotonic()
        error: ProviderError | None = None
        try:
            self._send(route, settings)
        except Incomplete:
            # A 1-token completion probe of a reasoning model spends its token thinking and
            # comes back empty (finish_reason length): the route answered, which is all a check
            # asks. As a failure it would keep such a route failing, and a half-open breaker
            # closed only by jobs.
            error = None
        except ProviderError as exc:
            error = exc
        except Exception as exc:  # a check that cannot even be built (a bad key file, say)
            error = InvalidResponse(f"{type(exc).__name__}: {exc}")
        latency_s = time.monotonic() - started
        if grant is not None:
            outcome = CallOutcome.of(error, latency_s=latency_s, is_call=False)
            transition = self.router.record(grant, outcome)
            if transition is not None:
                self.on_transition(transition)
        if error is not None and not error.route_at_fault:
            # This worker could not take the reply (its reply budget): nothing was learnt about
            # the route, so its health stays as the last real check left it.
            return HealthResult(
                route.id,
                False,
                round(latency_s * 1000, 1),
                error.error_class,
                "not checked: this worker's reply budget was spent",
                grant is not None,
                "unchecked",
            )
        detail = self.redact(error.message)[:300] if error else ""
        route_keys = RouteKeys.under(self.prefix, route.id)
        health, _fails, changed = self._record(
            keys=[route_keys.breaker, route_keys.health],
            args=[
                0 if error else 1,
                round(latency_s * 1000, 1),
                error.error_class.value if error else "",
                detail,
                1 if grant is not None else 0,
                settings.failing_after,
            ],
        )
        health = as_text(health)
        if int(changed):
            log.warning("health %s: now %s%s", route.id, health, f" ({detail})" if detail else "")
        return HealthResult(
            route.id,
            error is None,
            round(latency_s * 1000, 1),
            error.error_class if error else None,
            detail,
            grant is not None,
            health,
        )

    def _probe_permit(self, route: Route, settings: HealthSettings) -> Grant | None:
        """The route's half-open probe permit when its breaker is open past its cool-down; None
        for a closed route (it takes nothing) or one still cooling. One round trip, through the
        same router jobs use (its per-process fallback included)."""
        acquired = self.router.acquire_probe(route, hold_s=settings.timeout_s)
        for transition in acquired.transitions:
            self.on_transition(transition)
        return acquired.grant

    def _send(self, route: Route, settings: HealthSettings) -> None:
        adapter = self.adapters[route.id]
        if settings.probe == "completion":
            reply = exchange(self.transport, adapter, PING, settings.timeout_s)
            try:
                adapter.parse_reply(reply)
            finally:
                release_body(reply.body)
        else:
            call = adapter.build_probe()
            reply = self.transport.send(call, timeout_s=settings.timeout_s)
            try:
                check_address(call, reply)
                adapter.read_probe(reply)
            finally:
                release_body(reply.body)
