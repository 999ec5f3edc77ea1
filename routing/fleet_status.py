"""What the fleet knows about each route, read from Redis for operators: ``turnout status`` and
the Prometheus exporter. Reads only: Redis's clock, then one pipelined round trip for every
route. The minute and day buckets are those of Redis's clock, the one the scripts count on, so a
reader whose clock is off still reads the buckets the workers write.

The numbers come from what record_outcome.lua and the health checks (record_health.lua) keep:
the breaker hash, the last health check, per-minute counters and latency histograms (kept ten
minutes), the route's latest latencies (LATENCY_SAMPLES of them), per-day counters (kept three
days) and totals since the start (routing.keys.RouteKeys).

Latency percentiles are those of the latencies measured in the window (nearest rank), not a
histogram bucket's bound: a 1 s call reads 1000 ms, not "at most 2500". On a route busier than
LATENCY_SAMPLES calls in the window, they are those of its latest LATENCY_SAMPLES calls. A call
counts as an error when it failed (any class) or when the breaker counted it as a failure (a
slow call), so a route whose breaker its calls opened never reads 0% errors; ``failures_recent``
says how many of them the breaker counted (a bad request it does not).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from routing.keys import LATENCY_SAMPLES, MINUTE_MS, RouteKeys
from routing.redis_clock import redis_time
from routing.redis_text import decoded
from routing.routes import Route

#: The window of the status's latency percentiles and error rate.
RECENT_MINUTES = 5


@dataclass(frozen=True)
class Health:
    #: 'ok', 'failing', 'unknown' (never checked), or 'unusable' (the last worker to start
    #: lacks a variable the route needs: ``detail`` names it; workers.credentials)
    state: str
    ok: bool | None = None
    checked_at: float | None = None
    latency_ms: float | None = None
    error_class: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class RouteStatus:
    route_id: str
    deployment: str
    provider: str
    model: str
    #: closed, open, or half_open (its cool-down is over: the next call is a probe)
    state: str
    #: when the breaker last changed state (None: never)
    since: float | None
    #: why it opened, when it is open or half-open
    reason: str
    #: when it may be probed again, when it is open
    open_until: float | None
    #: a Retry-After running: no calls until then, whatever the breaker's state
    cooling_until: float | None
    health: Health
    #: over the last RECENT_MINUTES: calls, errors (failed, or slow enough to fail the breaker)
    calls_recent: int
    errors_recent: int
    p50_ms: float | None
    p95_ms: float | None
    in_flight: int
    #: since midnight UTC
    today: dict[str, float] = field(default_factory=dict)
    #: tokens left in the rate-limit buckets now (None: no limit)
    rpm_left: float | None = None
    tpm_left: float | None = None
    #: the recent calls the breaker counted as failures (slow ones in, bad requests out)
    failures_recent: int = 0
    #: totals since the start, by name (calls, err:<class>, b<i>, lat_sum, tokens, cost)
    totals: dict[str, float] = field(default_factory=dict)

    @property
    def error_rate(self) -> float | None:
        return self.errors_recent / self.calls_recent if self.calls_recent else None

    @property
    def spent_today(self) -> float:
        """USD spent on the route since midnight UTC (calls at an unknown price add nothing)."""
        return self.today.get("cost", 0.0)


def read_route_status(
    client: redis.Redis, prefix: str, routes: Sequence[Route]
) -> list[RouteStatus]:
    clock = redis_time(client)
    pipe = client.pipeline(transaction=False)
    for route in routes:
        keys = RouteKeys.under(prefix, route.id)
        pipe.hgetall(keys.breaker)
        pipe.hgetall(keys.health)
        pipe.zcount(keys.inflight, clock.ms, "+inf")
        pipe.hgetall(keys.day(clock.day))
        pipe.hgetall(keys.totals)
        pipe.lrange(keys.latencies, 0, LATENCY_SAMPLES - 1)
        for back in range(RECENT_MINUTES):
            pipe.hgetall(keys.minute(clock.minute - back))
    replies = pipe.execute()
    per_route = 6 + RECENT_MINUTES
    return [
        _status(route, replies[i * per_route : (i + 1) * per_route], clock.ms)
        for i, route in enumerate(routes)
    ]


def percentile_ms(samples: Sequence[float], q: float) -> float | None:
    """The q-th percentile of measured latencies (nearest rank: a latency that was measured,
    never one interpolated); None without samples."""
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def recent_latencies(samples: Sequence[bytes | str], now_ms: int) -> list[float]:
    """The latencies (ms) of the ``<ms>:<Redis ms>`` samples recorded within RECENT_MINUTES."""
    since = now_ms - RECENT_MINUTES * MINUTE_MS
    latencies = []
    for sample in samples:
        text = sample.decode() if isinstance(sample, bytes) else sample
        latency, _, at = text.partition(":")
        if int(at) > since:
            latencies.append(float(latency))
    return latencies


def _status(route: Route, replies: list[Any], now_ms: int) -> RouteStatus:
    now = now_ms / 1000
    breaker, health, today, totals = (decoded(replies[i]) for i in (0, 1, 3, 4))
    in_flight = int(replies[2])
    latencies = recent_latencies(replies[5], now_ms)
    minutes = [decoded(r) for r in replies[6:]]
    state = breaker.get("state", "closed")
    open_until = _seconds(breaker.get("open_until"))
    if state == "open" and open_until is not None and open_until <= now:
        manual = route.breaker.failback == "manual"
        state = "open" if manual else "half_open"
    cool = _seconds(breaker.get("cool_until"))
    calls = errors = failures = 0
    for counts in minutes:
        calls += int(counts.get("calls", 0))
        errors += int(counts.get("errors", 0))
        failures += int(counts.get("failures", 0))
    return RouteStatus(
        route_id=route.id,
        deployment=route.deployment.id,
        provider=route.deployment.provider,
        model=route.deployment.model,
        state=state,
        since=_seconds(breaker.get("changed_at")),
        reason=breaker.get("reason", "") if state != "closed" else "",
        open_until=open_until if state == "open" and route.breaker.failback == "auto" else None,
        cooling_until=cool if cool is not None and cool > now else None,
        health=_health(breaker, health),
        calls_recent=calls,
        errors_recent=errors,
        p50_ms=percentile_ms(latencies, 0.5),
        p95_ms=percentile_ms(latencies, 0.95),
        in_flight=in_flight,
        today={k: float(v) for k, v in today.items()},
        rpm_left=_bucket_left(breaker, "rpm", route.rpm, now),
        tpm_left=_bucket_left(breaker, "tpm", route.tpm, now),
        failures_recent=failures,
        totals={k: float(v) for k, v in totals.items()},
    )


def _health(breaker: dict[str, str], last: dict[str, str]) -> Health:
    if last.get("unusable"):
        return Health("unusable", detail=last["unusable"])
    if not last:
        return Health("unknown")
    return Health(
        breaker.get("health", "ok"),
        ok=last.get("ok") == "1",
        checked_at=_seconds(last.get("checked_at")),
        latency_ms=float(last["latency_ms"]) if last.get("latency_ms") else None,
        error_class=last.get("error_class") or None,
        detail=last.get("detail", ""),
    )


def _bucket_left(
    breaker: dict[str, str], name: str, per_minute: int | None, now: float
) -> float | None:
    """The bucket's tokens now, refilled as acquire_route.lua would (full when never used)."""
    if not per_minute:
        return None
    tokens, since = breaker.get(f"{name}_tokens"), breaker.get(f"{name}_ts")
    if tokens is None or since is None:
        return float(per_minute)
    grown = float(tokens) + (now * 1000 - int(since)) * per_minute / 60000
    return max(0.0, min(float(per_minute), grown))


def _seconds(ms: str | None) -> float | None:
    return int(float(ms)) / 1000 if ms else None
