"""``turnout status``: the fleet at a glance, read from Redis (one round trip per Redis), as JSON
or as rich tables. Reading and rendering are separate so either can be tested alone."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import redis
from rich.console import Group
from rich.markup import escape
from rich.table import Table

from ops.amqp_queues import queue_depths, stack_queues
from routing.config import TurnoutConfig
from routing.fleet_status import RECENT_MINUTES, RouteStatus, read_route_status
from routing.jobstore import JobStore
from routing.key_usage import KeyUsage, read_key_usage
from routing.keys import DAY_MS, Keys
from routing.lanes import bulk_queues, lanes_on
from routing.planning import routes_of
from routing.redis_text import decoded
from routing.routes import Route
from routing.settings import CoreSettings
from workers.presence import SEEN_WITHIN_S


@dataclass(frozen=True)
class WorkerSeen:
    """A worker that announced itself lately (workers.presence)."""

    worker_id: str
    hostname: str
    pid: int | None
    concurrency: int | None
    seen_at: float


@dataclass(frozen=True)
class FleetView:
    routes: list[RouteStatus]
    #: queued, running now; created, succeeded, failed today
    jobs: dict[str, int]
    #: messages waiting in each Celery queue: jobs, and beat's control queue
    queues: dict[str, int]
    #: Redis's clock when it was read (the one the workers' statistics count on)
    read_at: float
    #: workers seen within workers.presence.SEEN_WITHIN_S, by id
    workers: list[WorkerSeen] = field(default_factory=list)
    #: run messages the reconciler sent again since the start, by reason
    reconciler: dict[str, int] = field(default_factory=dict)
    #: every API key's usage, by its id and mask (routing.key_usage), never the key
    keys: list[KeyUsage] = field(default_factory=list)

    @property
    def concurrency(self) -> int:
        """Jobs the online workers can run at once (those that said)."""
        return sum(w.concurrency or 0 for w in self.workers)

    @property
    def spent_today(self) -> float:
        """USD spent today (UTC) over every route."""
        return sum(r.spent_today for r in self.routes)


def all_routes(config: TurnoutConfig) -> list[Route]:
    """Every route of the config: each deployment, or each key of its pool, by id."""
    return [
        route
        for deployment in config.deployments.values()
        for route in sorted(routes_of(deployment, config), key=lambda r: r.id)
    ]


class FleetReader:
    """Reads the fleet, over clients it keeps until ``close``: ``turnout status --watch`` reads
    every few seconds on the same connections instead of opening new ones each time (one client
    when the breakers' Redis is the jobs' Redis). The one reader of the fleet: ``turnout
    status`` and the Prometheus exporter (ops.exporter) both render its FleetView, so they
    cannot disagree. Raises redis.RedisError when a Redis does not answer, and
    ops.amqp_queues.BrokerUnreachable when the stack's broker is RabbitMQ and it does not
    (its queue depths are read there, over a connection opened per reading)."""

    def __init__(
        self,
        settings: CoreSettings,
        config: TurnoutConfig,
        *,
        connect_timeout_s: float = 2.0,
        timeout_s: float = 5.0,
        client_name: str = "turnout-status",
    ) -> None:
        self._settings = settings
        self._keys = Keys(settings.namespace)
        #: The bulk lane's queues (routing.lanes), each shown as its own queue.
        self._bulk_queues = bulk_queues(self._keys, settings) if lanes_on(settings) else []
        self._routes = all_routes(config)
        options: dict[str, Any] = {
            "socket_connect_timeout": connect_timeout_s,
            "socket_timeout": timeout_s,
            "client_name": f"{client_name}:{settings.namespace}",
        }
        self._jobs = redis.Redis.from_url(settings.redis_url, **options)
        self._store = JobStore(self._jobs, self._keys, ttl_s=settings.job_ttl_s)
        breaker_url = settings.breaker_redis_url or settings.redis_url
        self._breakers = (
            self._jobs
            if breaker_url == settings.redis_url
            else redis.Redis.from_url(breaker_url, **options)
        )

    @property
    def routes(self) -> list[Route]:
        """The config's routes, in the order of FleetView.routes (their limits, for instance)."""
        return list(self._routes)

    def read(self) -> FleetView:
        keys = self._keys
        names = (keys.queue, keys.control_queue, *self._bulk_queues)
        with self._jobs.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.llen(keys.queue_list(name))
            pipe.time()
            pipe.zrange(keys.workers, 0, -1, withscores=True)
            pipe.hgetall(keys.worker_info)
            pipe.hgetall(keys.reconciler_counts)
            *lengths, (seconds, micros), seen, info, resent = pipe.execute()
        queues = {name: int(length) for name, length in zip(names, lengths, strict=True)}
        if self._settings.broker_is_amqp:
            # The messages are on RabbitMQ: its count, not the (empty) Redis lists.
            physical = stack_queues(self._settings)
            depths = queue_depths(self._settings, physical)
            queues = {name: depths[queue] for name, queue in zip(names, physical, strict=True)}
        now = int(seconds) + int(micros) / 1e6
        jobs = self._store.counts()
        routes = read_route_status(self._breakers, keys.route_prefix, self._routes)
        return FleetView(
            routes,
            jobs,
            queues,
            now,
            workers_seen(seen, decoded(info), now),
            reconciler={reason: max(0, int(float(n))) for reason, n in decoded(resent).items()},
            keys=read_key_usage(self._breakers, keys, int(now * 1000) // DAY_MS),
        )

    def close(self) -> None:
        self._jobs.close()
        if self._breakers is not self._jobs:
            self._breakers.close()

    def __enter__(self) -> FleetReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def workers_seen(
    seen: list[tuple[bytes | str, float]], info: dict[str, str], now: float
) -> list[WorkerSeen]:
    """The workers announced within SEEN_WITHIN_S of ``now`` (Redis's clock), by id."""
    workers = []
    for member, score in seen:
        worker_id = member.decode() if isinstance(member, bytes) else member
        if score / 1000 < now - SEEN_WITHIN_S:
            continue
        about = json.loads(info.get(worker_id, "{}"))
        workers.append(
            WorkerSeen(
                worker_id,
                str(about.get("hostname", "")),
                about.get("pid"),
                about.get("concurrency"),
                score / 1000,
            )
        )
    return sorted(workers, key=lambda w: w.worker_id)


def read_fleet(settings: CoreSettings, config: TurnoutConfig) -> FleetView:
    """One reading, on clients opened and closed for it."""
    with FleetReader(settings, config) as reader:
        return reader.read()


def as_json(view: FleetView) -> dict[str, Any]:
    return {
        "deployments": [_route_json(r) for r in view.routes],
        "queues": view.queues,
        "jobs": view.jobs,
        "spent_today_usd": round(view.spent_today, 6),
        "workers": [
            {
                "id": w.worker_id,
                "hostname": w.hostname,
                "pid": w.pid,
                "concurrency": w.concurrency,
                "seen_at": w.seen_at,
            }
            for w in view.workers
        ],
        "keys": [_key_json(k) for k in view.keys],
        "read_at": view.read_at,
    }


def _key_json(k: KeyUsage) -> dict[str, Any]:
    return {
        "key": k.key_id,
        "source": k.source,
        "masked": k.masked,
        "calls": k.calls,
        "calls_today": k.calls_today,
        "errors": k.errors,
        "prompt_tokens": k.prompt_tokens,
        "completion_tokens": k.completion_tokens,
        "cost_usd": round(k.cost_usd, 6),
        "last_used": k.last_used / 1000 if k.last_used else None,
        "auth_failing": k.auth_failing,
    }


def _route_json(r: RouteStatus) -> dict[str, Any]:
    return {
        "id": r.route_id,
        "deployment": r.deployment,
        "provider": r.provider,
        "model": r.model,
        "state": r.state,
        "since": r.since,
        "reason": r.reason or None,
        "open_until": r.open_until,
        "cooling_until": r.cooling_until,
        "health": {
            "state": r.health.state,
            "ok": r.health.ok,
            "checked_at": r.health.checked_at,
            "latency_ms": r.health.latency_ms,
            "error_class": r.health.error_class,
            "detail": r.health.detail,
        },
        "recent": {
            "minutes": RECENT_MINUTES,
            "calls": r.calls_recent,
            "errors": r.errors_recent,
            "breaker_failures": r.failures_recent,
            "error_rate": r.error_rate,
            "p50_ms": r.p50_ms,
            "p95_ms": r.p95_ms,
        },
        "in_flight": r.in_flight,
        "today": {
            "calls": int(r.today.get("calls", 0)),
            "errors": int(r.today.get("errors", 0)),
            "prompt_tokens": int(r.today.get("prompt_tokens", 0)),
            "completion_tokens": int(r.today.get("completion_tokens", 0)),
            "cost_usd": round(r.today.get("cost", 0.0), 6),
        },
        "headroom": {"rpm": r.rpm_left, "tpm": r.tpm_left},
    }


def as_tables(view: FleetView) -> Group:
    routes = Table(title=f"Routes (fleet-wide; latency and errors over {RECENT_MINUTES} min)")
    for column in ("id", "state", "health", "p50/p95", "errors", "in flight", "today", "headroom"):
        routes.add_column(column)
    for r in view.routes:
        routes.add_row(
            escape(f"{r.route_id}\n{r.provider}/{r.model}"),
            escape(_state(r, view.read_at)),
            escape(_health(r, view.read_at)),
            _latency(r),
            f"{r.error_rate:.0%} of {r.calls_recent}" if r.error_rate is not None else "-",
            str(r.in_flight),
            escape(_today(r)),
            escape(_headroom(r)),
        )
    jobs = Table(title="Jobs")
    for column in ("messages waiting", "queued", "running", "today: created / ok / failed"):
        jobs.add_column(column)
    j = view.jobs
    jobs.add_row(
        "\n".join(f"{name}: {length}" for name, length in view.queues.items()),
        str(j["queued"]),
        str(j["running"]),
        f"{j['created']} / {j['succeeded']} / {j['failed']}",
    )
    clock = time.strftime("%H:%M:%S", time.localtime(view.read_at))
    summary = (
        f"Workers online: {len(view.workers)} (concurrency {view.concurrency}). "
        f"Spent today (UTC): ${view.spent_today:.4f}. Read at {clock} (Redis's clock)."
    )
    if not view.keys:
        return Group(routes, jobs, summary)
    return Group(routes, jobs, _keys_table(view), summary)


def _keys_table(view: FleetView) -> Table:
    table = Table(title="API keys (turnout keys list has more)")
    for column in ("key", "masked", "today", "calls", "errors", "cost", "last used"):
        table.add_column(column)
    for k in view.keys:
        errors = ", ".join(f"{c} {n}" for c, n in sorted(k.errors.items()))
        table.add_row(
            escape(k.key_id) + (" [red]auth failing[/]" if k.auth_failing else ""),
            escape(k.masked),
            str(k.calls_today),
            str(k.calls),
            escape(errors) or "-",
            f"${k.cost_usd:.4f}",
            _ago(k.last_used / 1000 if k.last_used else None, view.read_at),
        )
    return table


def _ago(at: float | None, now: float) -> str:
    if at is None:
        return "never"
    seconds = max(0.0, now - at)
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"


def _state(r: RouteStatus, now: float) -> str:
    text = r.state
    if r.reason:
        text += f" ({r.reason})"
    if r.since is not None:
        text += f"\nsince {_ago(r.since, now)}"
    if r.open_until is not None:
        text += f", until {time.strftime('%H:%M:%S', time.localtime(r.open_until))}"
    if r.cooling_until is not None:
        text += f"\ncooling {r.cooling_until - now:.0f}s (Retry-After)"
    return text


def _health(r: RouteStatus, now: float) -> str:
    h = r.health
    if h.state == "unknown":
        return "not checked"
    if h.state == "unusable":
        return f"unusable\n{h.detail.removeprefix('unusable: ')}"
    last = "ok" if h.ok else (h.error_class or "failed")
    return f"{h.state}\nlast {last} {_ago(h.checked_at, now)}"


def _latency(r: RouteStatus) -> str:
    if r.p50_ms is None or r.p95_ms is None:
        return "-"
    return f"{r.p50_ms:.0f} / {r.p95_ms:.0f} ms"


def _today(r: RouteStatus) -> str:
    calls = int(r.today.get("calls", 0))
    tokens = int(r.today.get("prompt_tokens", 0) + r.today.get("completion_tokens", 0))
    return f"{calls} calls, {tokens} tok\n${r.today.get('cost', 0.0):.4f}"


def _headroom(r: RouteStatus) -> str:
    parts = []
    if r.rpm_left is not None:
        parts.append(f"rpm {r.rpm_left:.0f}")
    if r.tpm_left is not None:
        parts.append(f"tpm {r.tpm_left:.0f}")
    return ", ".join(parts) or "no limit"
