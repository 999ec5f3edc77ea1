"""``turnout exporter``: the fleet's metrics for Prometheus, read from Redis on every scrape.

Workers keep their statistics in Redis (record_outcome.lua's, and the job counts of the job
scripts), so one exporter is right however many workers run, and a worker that dies takes nothing
with it. Each scrape is one reading of ops.fleet_view.FleetReader, the reader behind ``turnout
status``, so a scrape and the status show the same numbers: routes (routing.fleet_status, on the
breakers' Redis, the same one unless TURNOUT_BREAKER_REDIS_URL names another), queues, job and
reconciler counts, and the workers announced lately (workers.presence), each read on Redis's
clock, the one the scripts count on. No value is kept between scrapes.
When a Redis does not answer, the scrape says ``turnout_up 0`` and nothing else: an absent series
is honest, a stale one is not.

Label ``route`` is a route id (a deployment, or ``<deployment>/<KEY_VARIABLE>`` for one key of a
pool), with its ``deployment`` and ``provider``. Label ``key`` of the turnout_key_* families is
an API key's id (``env:NAME``, ``store:NAME@slot``) and ``masked`` its last 4 characters, never
the key (routing.key_usage). Counters are totals since the route's statistics
began (they reset only when its Redis keys are deleted, which rate() and increase() take as a
counter reset). Run one exporter per Prometheus: two behind one job double every sum.

The registry holds this collector only: no process_* or python_* metrics, which would describe
the exporter rather than the fleet (Prometheus' own ``up`` and scrape_duration_seconds cover the
exporter's health).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Literal

import redis
import typer
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from ops.fleet_view import FleetReader, FleetView
from routing.config import TurnoutConfig
from routing.errors import ErrorClass
from routing.fleet_status import RouteStatus
from routing.key_usage import KeyUsage
from routing.routes import LATENCY_BUCKETS_S, Route
from routing.settings import CoreSettings
from workers.presence import SEEN_WITHIN_S

log = logging.getLogger("turnout.exporter")

#: Labels of every per-route family.
ROUTE_LABELS = ("route", "deployment", "provider")
#: The classes a provider call can fail with (the job-level ones never reach a route).
PROVIDER_ERROR_CLASSES = tuple(
    c.value
    for c in ErrorClass
    if c
    not in {
        ErrorClass.DEADLINE_EXCEEDED,
        ErrorClass.NO_CANDIDATES,
        ErrorClass.ALL_UNAVAILABLE,
        ErrorClass.WORKER_LOST,
        ErrorClass.INTERNAL,
    }
)
BREAKER_STATES = ("closed", "open", "half_open")
JOB_STATES_NOW = ("queued", "running")
JOB_STATES_TODAY = ("created", "succeeded", "failed")
RECONCILE_REASONS = ("queued", "lease_expired")
#: Labels of every per-key family.
KEY_LABELS = ("key", "masked")


@dataclass(frozen=True)
class Family:
    """One metric family the exporter serves: its name as exposed, type, labels and meaning."""

    name: str
    kind: Literal["counter", "gauge", "histogram"]
    labels: tuple[str, ...]
    help: str

    @property
    def sample_names(self) -> tuple[str, ...]:
        """The names of its samples in the exposition (what PromQL queries)."""
        if self.kind == "histogram":
            return tuple(f"{self.name}_{suffix}" for suffix in ("bucket", "sum", "count"))
        return (self.name,)


#: Every family, by name. The README's metrics table and the dashboard test read this.
FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            "turnout_up",
            "gauge",
            (),
            "1: this scrape read every Redis turnout uses; 0: one did not answer, and no other "
            "turnout metric is exposed.",
        ),
        Family(
            "turnout_route_info",
            "gauge",
            (*ROUTE_LABELS, "model"),
            "Always 1: each route (a deployment, or one key of its pool) and its model.",
        ),
        Family(
            "turnout_provider_requests_total",
            "counter",
            ROUTE_LABELS,
            "Provider calls on the route, fleet-wide, failures included (health checks not).",
        ),
        Family(
            "turnout_provider_errors_total",
            "counter",
            (*ROUTE_LABELS, "class"),
            "Failed provider calls on the route, by error class.",
        ),
        Family(
            "turnout_provider_latency_seconds",
            "histogram",
            ROUTE_LABELS,
            "Provider call latency, connect to last byte, failures included.",
        ),
        Family(
            "turnout_provider_tokens_total",
            "counter",
            (*ROUTE_LABELS, "kind"),
            "Tokens the provider reported, by kind (prompt, completion).",
        ),
        Family(
            "turnout_provider_cost_usd_total",
            "counter",
            ROUTE_LABELS,
            "USD spent at the deployment's prices (calls at an unknown price add nothing).",
        ),
        Family(
            "turnout_breaker_state",
            "gauge",
            (*ROUTE_LABELS, "state"),
            "1 for the fleet-wide breaker's state (closed, open, half_open), 0 for the others. "
            "half_open: its cool-down is over and the next call is a probe.",
        ),
        Family(
            "turnout_route_healthy",
            "gauge",
            ROUTE_LABELS,
            "1: the route's health checks pass; 0: they fail (other routes go first). Absent: "
            "never checked.",
        ),
        Family(
            "turnout_route_health_checked_timestamp_seconds",
            "gauge",
            ROUTE_LABELS,
            "When the route's last health check ran (Unix time). Absent: never checked.",
        ),
        Family(
            "turnout_route_in_flight",
            "gauge",
            ROUTE_LABELS,
            "Calls in flight on the route, fleet-wide.",
        ),
        Family(
            "turnout_rate_limit_headroom",
            "gauge",
            (*ROUTE_LABELS, "kind"),
            "Requests (kind rpm) or tokens (tpm) the route's fleet-wide limit allows now; only "
            "for routes with that limit.",
        ),
        Family(
            "turnout_rate_limit_per_minute",
            "gauge",
            (*ROUTE_LABELS, "kind"),
            "The route's configured fleet-wide limit (rpm, tpm); only for routes with one.",
        ),
        Family(
            "turnout_queue_length",
            "gauge",
            ("queue",),
            "Messages waiting in the Celery queue, not yet taken by a worker.",
        ),
        Family(
            "turnout_jobs",
            "gauge",
            ("state",),
            "Jobs queued or running now, from the job records.",
        ),
        Family(
            "turnout_jobs_today",
            "gauge",
            ("state",),
            "Jobs created, succeeded and failed since 00:00 UTC; back to 0 at midnight UTC "
            "(increase() takes that as a counter reset).",
        ),
        Family(
            "turnout_reconciler_resent_total",
            "counter",
            ("reason",),
            "Run messages the reconciler sent again: queued (a lost message), lease_expired (a "
            "dead worker's job).",
        ),
        Family(
            "turnout_workers_online",
            "gauge",
            (),
            f"Workers that announced themselves within the last {SEEN_WITHIN_S:.0f} s "
            "(workers.presence): one stopped cleanly leaves at once, a killed one when its "
            "last announcement is that old.",
        ),
        Family(
            "turnout_worker_concurrency",
            "gauge",
            (),
            "Jobs the online workers can run at once: the sum of their concurrency.",
        ),
        Family(
            "turnout_key_calls_total",
            "counter",
            KEY_LABELS,
            "Provider calls that carried the API key (key: env:NAME or store:NAME@slot; "
            "masked: its last 4 characters; never the key).",
        ),
        Family(
            "turnout_key_errors_total",
            "counter",
            (*KEY_LABELS, "class"),
            "Failed provider calls that carried the API key, by error class.",
        ),
        Family(
            "turnout_key_tokens_total",
            "counter",
            (*KEY_LABELS, "kind"),
            "Tokens the provider reported for calls that carried the API key (prompt, completion).",
        ),
        Family(
            "turnout_key_cost_usd_total",
            "counter",
            KEY_LABELS,
            "USD spent on calls that carried the API key.",
        ),
        Family(
            "turnout_key_auth_failing",
            "gauge",
            KEY_LABELS,
            "1: the key's last call was refused as auth (the provider no longer takes it).",
        ),
    )
}


def families_of(view: FleetView, routes: Sequence[Route]) -> list[Metric]:
    """The metric families of a reading (no I/O), turnout_up included; ``routes`` are the
    config's, in the order of ``view.routes`` (FleetReader.routes: their configured limits)."""
    made = {name: _new(family) for name, family in FAMILIES.items()}
    add = partial(_add, made)
    add("turnout_up", [], 1)
    for route, status in zip(routes, view.routes, strict=True):
        _add_route(made, route, status)
    for queue, length in sorted(view.queues.items()):
        add("turnout_queue_length", [queue], length)
    for state in JOB_STATES_NOW:
        add("turnout_jobs", [state], view.jobs.get(state, 0))
    for state in JOB_STATES_TODAY:
        add("turnout_jobs_today", [state], view.jobs.get(state, 0))
    for reason in sorted({*RECONCILE_REASONS, *view.reconciler}):
        add("turnout_reconciler_resent_total", [reason], view.reconciler.get(reason, 0))
    add("turnout_workers_online", [], len(view.workers))
    add("turnout_worker_concurrency", [], view.concurrency)
    for key in view.keys:
        _add_key(made, key)
    return list(made.values())


def _add_key(made: dict[str, _Made], key: KeyUsage) -> None:
    labels = [key.key_id, key.masked]
    _add(made, "turnout_key_calls_total", labels, key.calls)
    for error_class, count in sorted(key.errors.items()):
        _add(made, "turnout_key_errors_total", [*labels, error_class], count)
    _add(made, "turnout_key_tokens_total", [*labels, "prompt"], key.prompt_tokens)
    _add(made, "turnout_key_tokens_total", [*labels, "completion"], key.completion_tokens)
    _add(made, "turnout_key_cost_usd_total", labels, key.cost_usd)
    _add(made, "turnout_key_auth_failing", labels, 1 if key.auth_failing else 0)


def down_families() -> list[Metric]:
    """A scrape whose Redis did not answer: turnout_up 0, and nothing that could be stale."""
    made = {"turnout_up": _new(FAMILIES["turnout_up"])}
    _add(made, "turnout_up", [], 0)
    return list(made.values())


_Made = CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily


def _new(family: Family) -> _Made:
    labels = list(family.labels)
    if family.kind == "counter":
        return CounterMetricFamily(family.name, family.help, labels=labels)
    if family.kind == "histogram":
        return HistogramMetricFamily(family.name, family.help, labels=labels)
    return GaugeMetricFamily(family.name, family.help, labels=labels)


def _add(made: dict[str, _Made], name: str, labels: Sequence[str], value: float) -> None:
    family = made[name]
    assert not isinstance(family, HistogramMetricFamily), name
    family.add_metric(labels, value)


def _add_route(made: dict[str, _Made], route: Route, status: RouteStatus) -> None:
    labels = [status.route_id, status.deployment, status.provider]
    totals = status.totals

    def add(name: str, value: float, *extra: str) -> None:
        _add(made, name, [*labels, *extra], value)

    add("turnout_route_info", 1, status.model)
    add("turnout_provider_requests_total", totals.get("calls", 0))
    seen = {name[4:] for name in totals if name.startswith("err:")}
    for error_class in sorted({*PROVIDER_ERROR_CLASSES, *seen}):
        add("turnout_provider_errors_total", totals.get(f"err:{error_class}", 0), error_class)
    histogram = made["turnout_provider_latency_seconds"]
    assert isinstance(histogram, HistogramMetricFamily)
    histogram.add_metric(labels, latency_buckets(totals), totals.get("lat_sum", 0.0))
    add("turnout_provider_tokens_total", totals.get("prompt_tokens", 0), "prompt")
    add("turnout_provider_tokens_total", totals.get("completion_tokens", 0), "completion")
    add("turnout_provider_cost_usd_total", totals.get("cost", 0.0))
    for state in BREAKER_STATES:
        add("turnout_breaker_state", 1 if status.state == state else 0, state)
    if status.health.state != "unknown":
        add("turnout_route_healthy", 1 if status.health.state == "ok" else 0)
    if status.health.checked_at is not None:
        add("turnout_route_health_checked_timestamp_seconds", status.health.checked_at)
    add("turnout_route_in_flight", status.in_flight)
    for kind, limit, left in (
        ("rpm", route.rpm, status.rpm_left),
        ("tpm", route.tpm, status.tpm_left),
    ):
        if limit and left is not None:
            add("turnout_rate_limit_headroom", left, kind)
            add("turnout_rate_limit_per_minute", limit, kind)


def latency_buckets(totals: dict[str, float]) -> list[tuple[str, float]]:
    """Prometheus' cumulative ``le`` buckets from the per-bucket counts ``b<i>`` the fleet keeps
    (bucket i holds the calls at most LATENCY_BUCKETS_S[i] and slower than the bound before;
    the last index, everything slower)."""
    buckets: list[tuple[str, float]] = []
    seen = 0.0
    for index, bound in enumerate(LATENCY_BUCKETS_S):
        seen += totals.get(f"b{index}", 0)
        buckets.append((repr(float(bound)), seen))  # 0.05, 1.0: Go's spelling
    seen += totals.get(f"b{len(LATENCY_BUCKETS_S)}", 0)
    buckets.append(("+Inf", seen))
    return buckets


class FleetCollector(Collector):
    """A prometheus-client collector that reads the fleet from Redis on every scrape."""

    def __init__(
        self,
        settings: CoreSettings,
        config: TurnoutConfig,
        *,
        connect_timeout_s: float = 2.0,
        timeout_s: float = 5.0,
    ) -> None:
        self._reader = FleetReader(
            settings,
            config,
            connect_timeout_s=connect_timeout_s,
            timeout_s=timeout_s,
            client_name="turnout-exporter",
        )
        self._was_up: bool | None = None

    def describe(self) -> Iterator[Metric]:
        """The families, without samples and without Redis (the registry learns the names)."""
        for family in FAMILIES.values():
            yield _new(family)

    def collect(self) -> Iterator[Metric]:
        try:
            view = self._reader.read()
        except redis.RedisError as exc:
            self._note(up=False, why=f"{type(exc).__name__}: {exc}")
            yield from down_families()
            return
        except Exception:  # a scrape never fails: say down, and log why for a human
            log.exception("reading the fleet failed")
            self._was_up = False
            yield from down_families()
            return
        self._note(up=True)
        yield from families_of(view, self._reader.routes)

    def close(self) -> None:
        self._reader.close()

    def _note(self, *, up: bool, why: str = "") -> None:
        """Log when Redis stops or starts answering, not on every scrape in between."""
        if up and self._was_up is False:
            log.info("Redis answers again")
        elif not up and self._was_up is not False:
            log.warning("Redis did not answer; scrapes say turnout_up 0 until it does (%s)", why)
        self._was_up = up


def exporter_registry(collector: Collector) -> CollectorRegistry:
    """A registry holding only ``collector`` (see the module docstring for why)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def serve_exporter(
    settings: CoreSettings, config: TurnoutConfig, port: int, host: str = "127.0.0.1"
) -> None:
    """Serve /metrics on host:port until SIGTERM or Ctrl-C (then stop serving and return)."""
    collector = FleetCollector(settings, config)
    try:
        server, thread = start_http_server(port, addr=host, registry=exporter_registry(collector))
    except OSError:
        collector.close()
        raise
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        # As PID 1 in a container, SIGTERM's default action is ignored: handle it.
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    log.info("serving the fleet's metrics on http://%s:%d/metrics", host, server.server_port)
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        collector.close()


def exporter(
    port: Annotated[int, typer.Option(help="Port to serve /metrics on.")] = 9464,
    host: Annotated[
        str, typer.Option(help="Address to listen on (0.0.0.0 only inside a container).")
    ] = "127.0.0.1",
) -> None:
    """Serve the fleet's Prometheus metrics: requests, errors, latency, tokens and cost per
    route, breaker state, health, queue length and jobs by state, read from Redis on every
    scrape (one exporter is right for any number of workers)."""
    from producers.cli_support import fail, settings_and_config

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings, config = settings_and_config()
    try:
        serve_exporter(settings, config, port, host)
    except OSError as exc:  # the port is taken, or the address is not ours
        raise fail(f"cannot listen on {host}:{port}: {exc}", code=1) from None
