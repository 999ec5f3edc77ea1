"""The exporter's collector against a real Redis: known calls, jobs and health checks written
through the real Lua scripts, then read back as Prometheus families; and the shipped Grafana
dashboard, checked against the families the exporter serves."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import redis
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ops.exporter import FAMILIES, PROVIDER_ERROR_CLASSES, FleetCollector, exporter_registry
from ops.fleet_view import FleetReader, all_routes, as_json
from routing.config import parse_config
from routing.errors import ErrorClass
from routing.fleet_admin import operate_breaker
from routing.fleet_router import FleetRouter
from routing.jobstore import JobStore, redis_client
from routing.keys import Keys
from routing.models import CompletionRequest, JobState, RoutingPolicy
from routing.redis_scripts import source
from routing.routes import LATENCY_BUCKETS_S, CallOutcome, Spent
from routing.settings import CoreSettings
from workers.presence import SEEN_WITHIN_S, WorkerPresence

MONITORING = Path(__file__).resolve().parents[2] / "ops" / "monitoring"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "turnout.json"

CONFIG = parse_config(
    {
        "deployments": [
            {
                "id": "primary",
                "provider": "openai",
                "model": "gpt-4o-mini",
                "rpm": 60,
                "tpm": 10_000,
            },
            {
                "id": "secondary",
                "provider": "groq",
                "model": "llama-3.1-8b-instant",
                "breaker": {"consecutive_failures": 2},
            },
            {"id": "tertiary", "provider": "mistral", "model": "mistral-small-latest"},
        ],
        "policies": {"default": {"targets": ["primary", "secondary", "tertiary"]}},
    },
    source="test.yaml",
)


def settings(redis_url: str, namespace: str, **extra: str) -> CoreSettings:
    return CoreSettings.model_validate(
        {"REDIS_URL": redis_url, "TURNOUT_NAMESPACE": namespace, **extra}
    )


def scrape(collector: FleetCollector) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of one scrape, through the text exposition Prometheus reads."""
    text = generate_latest(exporter_registry(collector)).decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def labels(route: str, **extra: str) -> frozenset[tuple[str, str]]:
    deployment = CONFIG.deployments[route]
    return frozenset(
        {"route": route, "deployment": route, "provider": deployment.provider, **extra}.items()
    )


@pytest.fixture
def fleet(redis_url, namespace):
    """Calls on three routes, four jobs, a health check and a reconciler count, in Redis."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    keys = Keys(namespace)
    router = FleetRouter(client, keys.route_prefix)
    routes = {route.id: route for route in all_routes(CONFIG)}

    def call(route_id, latency_s, error=None, spent=None):
        grant = router.acquire([routes[route_id]], order="given", tokens=100).grant
        assert grant is not None
        router.record(grant, CallOutcome(error_class=error, latency_s=latency_s, spent=spent))

    call("primary", 0.03, spent=Spent(100, 20, 0.001))
    call("primary", 0.2, spent=Spent(200, 30, 0.002))
    call("primary", 3.0, ErrorClass.SERVER_ERROR)
    call("primary", 0.04, ErrorClass.OVERLOADED)
    assert router.acquire([routes["primary"]], order="given", tokens=100).grant, "in flight"
    call("secondary", 150.0, ErrorClass.TIMEOUT)  # slower than the last bound: +Inf only
    call("secondary", 0.5, ErrorClass.TIMEOUT)  # the second in a row opens it
    operate_breaker(client, keys.route_prefix, "tertiary", "open", open_for_s=0.05)
    record_health = client.register_script(source("record_health"))
    primary, tertiary = keys.route("primary"), keys.route("tertiary")
    record_health(keys=[primary.breaker, primary.health], args=[1, 12.5, "", "", 0, 2])
    record_health(keys=[tertiary.breaker, tertiary.health], args=[0, 40.0, "auth", "401", 0, 1])

    store = JobStore(redis_client(redis_url), keys, ttl_s=600)
    for n in range(4):
        store.create(f"job-{n}", CompletionRequest.from_prompt("hi"), RoutingPolicy(targets=["a"]))
    for n in range(3):
        assert store.claim(f"job-{n}", f"token-{n}", lease_s=30, max_runs=3).status == "claimed"
    store.finish("job-0", JobState.SUCCEEDED, {}, [], token="token-0")
    store.finish("job-1", JobState.FAILED, {}, [], token="token-1")
    client.rpush(keys.queue_list(keys.queue), "m1", "m2", "m3")
    client.hincrby(keys.reconciler_counts, "lease_expired", 2)
    time.sleep(0.1)  # tertiary's operator-set open is over: half_open
    yield settings(redis_url, namespace)
    store.redis.close()
    client.close()


def test_a_scrape_reads_calls_errors_latency_tokens_and_cost(fleet):
    samples = scrape(FleetCollector(fleet, CONFIG))
    assert samples[("turnout_up", frozenset())] == 1
    assert samples[("turnout_provider_requests_total", labels("primary"))] == 4
    errors = {
        error_class: samples[
            ("turnout_provider_errors_total", labels("primary", **{"class": error_class}))
        ]
        for error_class in PROVIDER_ERROR_CLASSES
    }
    assert errors == {c: (1 if c in ("server_error", "overloaded") else 0) for c in errors}, (
        "every provider class is there from the start, so rate() sees the first error"
    )
    tokens = {
        kind: samples[("turnout_provider_tokens_total", labels("primary", kind=kind))]
        for kind in ("prompt", "completion")
    }
    assert tokens == {"prompt": 300, "completion": 50}
    assert samples[("turnout_provider_cost_usd_total", labels("primary"))] == pytest.approx(0.003)
    assert samples[("turnout_provider_cost_usd_total", labels("secondary"))] == 0


def test_latency_buckets_are_cumulative_with_sum_and_count(fleet):
    samples = scrape(FleetCollector(fleet, CONFIG))

    def buckets(route):
        return {
            dict(key)["le"]: value
            for (name, key), value in samples.items()
            if name == "turnout_provider_latency_seconds_bucket" and dict(key)["route"] == route
        }

    # 30 and 40 ms in the first bucket, 200 ms in 0.25, 3 s in 5.0
    assert buckets("primary") == {
        "0.05": 2,
        "0.1": 2,
        "0.25": 3,
        "0.5": 3,
        "1.0": 3,
        "2.5": 3,
        "5.0": 4,
        "10.0": 4,
        "30.0": 4,
        "60.0": 4,
        "120.0": 4,
        "+Inf": 4,
    }
    assert len(buckets("primary")) == len(LATENCY_BUCKETS_S) + 1
    assert samples[("turnout_provider_latency_seconds_count", labels("primary"))] == 4
    assert samples[("turnout_provider_latency_seconds_sum", labels("primary"))] == pytest.approx(
        3.27
    )
    secondary = buckets("secondary")
    assert (secondary["0.25"], secondary["0.5"], secondary["120.0"], secondary["+Inf"]) == (
        0,
        1,
        1,
        2,
    ), "150 s is counted in +Inf only"
    assert samples[("turnout_provider_latency_seconds_bucket", labels("tertiary", le="+Inf"))] == 0


def test_breaker_state_health_in_flight_and_headroom(fleet):
    samples = scrape(FleetCollector(fleet, CONFIG))

    def state(route):
        return {
            s: samples[("turnout_breaker_state", labels(route, state=s))]
            for s in ("closed", "open", "half_open")
        }

    assert state("primary") == {"closed": 1, "open": 0, "half_open": 0}
    assert state("secondary") == {"closed": 0, "open": 1, "half_open": 0}
    assert state("tertiary") == {"closed": 0, "open": 0, "half_open": 1}
    assert samples[("turnout_route_healthy", labels("primary"))] == 1
    assert samples[("turnout_route_healthy", labels("tertiary"))] == 0
    assert ("turnout_route_healthy", labels("secondary")) not in samples, "never checked"
    checked = samples[("turnout_route_health_checked_timestamp_seconds", labels("primary"))]
    assert abs(checked - time.time()) < 30
    assert samples[("turnout_route_in_flight", labels("primary"))] == 1
    assert samples[("turnout_route_in_flight", labels("secondary"))] == 0
    rpm = samples[("turnout_rate_limit_headroom", labels("primary", kind="rpm"))]
    assert 55 <= rpm <= 56.5, "five acquisitions took five of 60"
    assert samples[("turnout_rate_limit_per_minute", labels("primary", kind="tpm"))] == 10_000
    assert samples[("turnout_rate_limit_headroom", labels("primary", kind="tpm"))] < 10_000
    assert not any(
        name == "turnout_rate_limit_headroom" and dict(key)["route"] == "secondary"
        for name, key in samples
    ), "no limit, no headroom"
    info = labels("primary", model="gpt-4o-mini")
    assert samples[("turnout_route_info", info)] == 1


def test_jobs_queues_and_the_reconciler(fleet):
    samples = scrape(FleetCollector(fleet, CONFIG))

    def by_state(name, states):
        return {s: samples[(name, frozenset({"state": s}.items()))] for s in states}

    assert by_state("turnout_jobs", ("queued", "running")) == {"queued": 1, "running": 1}
    assert by_state("turnout_jobs_today", ("created", "succeeded", "failed")) == {
        "created": 4,
        "succeeded": 1,
        "failed": 1,
    }
    assert samples[("turnout_queue_length", frozenset({"queue": "jobs"}.items()))] == 3
    resent = {
        reason: samples[("turnout_reconciler_resent_total", frozenset({"reason": reason}.items()))]
        for reason in ("queued", "lease_expired")
    }
    assert resent == {"queued": 0, "lease_expired": 2}


def test_workers_online_and_their_concurrency_are_those_announced_lately(
    redis_url, namespace, redis_client
):
    given = settings(redis_url, namespace)
    none = scrape(FleetCollector(given, CONFIG))
    assert none[("turnout_workers_online", frozenset())] == 0, "no worker: 0, not a gap"
    assert none[("turnout_worker_concurrency", frozenset())] == 0
    keys = Keys(namespace)
    for n, concurrency in ((1, 8), (2, 4), (3, 2)):
        WorkerPresence(
            redis_client, keys, worker_id=f"w{n}@host:{n}", concurrency=concurrency
        ).announce()
    stale_ms = (int(redis_client.time()[0]) - int(SEEN_WITHIN_S) - 1) * 1000
    redis_client.zadd(keys.workers, {"w3@host:3": stale_ms})  # it stopped announcing
    samples = scrape(FleetCollector(given, CONFIG))
    assert samples[("turnout_workers_online", frozenset())] == 2
    assert samples[("turnout_worker_concurrency", frozenset())] == 12


def test_a_scrape_shows_the_numbers_turnout_status_shows(fleet, redis_client):
    WorkerPresence(redis_client, Keys(fleet.namespace), worker_id="w@h:1", concurrency=3).announce()
    samples = scrape(FleetCollector(fleet, CONFIG))
    with FleetReader(fleet, CONFIG) as reader:
        status = as_json(reader.read())
    for row in status["deployments"]:
        route = frozenset(
            {
                "route": row["id"],
                "deployment": row["deployment"],
                "provider": row["provider"],
            }.items()
        )
        assert samples[("turnout_route_in_flight", route)] == row["in_flight"]
        one_hot = {
            s: samples[("turnout_breaker_state", route | {("state", s)})]
            for s in ("closed", "open", "half_open")
        }
        assert one_hot[row["state"]] == 1, row["id"]
    for state, count in status["jobs"].items():
        name = "turnout_jobs" if state in ("queued", "running") else "turnout_jobs_today"
        assert samples[(name, frozenset({"state": state}.items()))] == count, state
    for queue, length in status["queues"].items():
        assert samples[("turnout_queue_length", frozenset({"queue": queue}.items()))] == length
    assert samples[("turnout_workers_online", frozenset())] == len(status["workers"]) == 1
    assert samples[("turnout_worker_concurrency", frozenset())] == 3


def test_every_family_served_is_in_the_catalog_with_its_labels(fleet):
    text = generate_latest(exporter_registry(FleetCollector(fleet, CONFIG))).decode()
    served = {family.name: family for family in text_string_to_metric_families(text)}
    catalog = {_family_name(f.name, f.kind): f for f in FAMILIES.values()}
    assert set(served) == set(catalog), "every family is served when every kind of data exists"
    for name, family in served.items():
        assert family.type == catalog[name].kind
        for sample in family.samples:
            extra = {"le"} if sample.name.endswith("_bucket") else set()
            assert set(sample.labels) == set(catalog[name].labels) | extra, sample


def _family_name(name, kind):
    return name.removesuffix("_total") if kind == "counter" else name


def test_an_empty_namespace_reads_as_zeros_not_gaps(redis_url, namespace):
    samples = scrape(FleetCollector(settings(redis_url, namespace), CONFIG))
    assert samples[("turnout_up", frozenset())] == 1
    assert samples[("turnout_provider_requests_total", labels("primary"))] == 0
    assert samples[("turnout_breaker_state", labels("primary", state="closed"))] == 1
    assert samples[("turnout_jobs", frozenset({"state": "queued"}.items()))] == 0


@pytest.mark.parametrize("which", ["REDIS_URL", "TURNOUT_BREAKER_REDIS_URL"])
def test_a_redis_that_does_not_answer_is_turnout_up_0_and_nothing_else(redis_url, namespace, which):
    dead = "redis://127.0.0.1:1/0"
    given = settings(redis_url, namespace, **{which: dead})
    collector = FleetCollector(given, CONFIG, connect_timeout_s=0.5, timeout_s=0.5)
    started = time.monotonic()
    samples = scrape(collector)
    assert samples == {("turnout_up", frozenset()): 0}
    assert time.monotonic() - started < 5


def test_a_registry_scrape_filtered_by_name_reads_only_those(fleet):
    registry = exporter_registry(FleetCollector(fleet, CONFIG))
    text = generate_latest(registry.restricted_registry(["turnout_up"])).decode()
    assert [f.name for f in text_string_to_metric_families(text)] == ["turnout_up"]


def test_redis_coming_back_is_read_at_the_next_scrape(fleet):
    collector = FleetCollector(fleet, CONFIG)
    assert scrape(collector)[("turnout_up", frozenset())] == 1
    collector._reader._jobs.connection_pool.disconnect()  # as a Redis restart drops them
    assert scrape(collector)[("turnout_provider_requests_total", labels("primary"))] == 4


# --- the shipped Prometheus and Grafana files ----------------------------------------------

PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "by", "without", "rate", "increase", "irate",
    "histogram_quantile", "vector", "or", "and", "unless", "clamp_min", "label_values",
    "topk", "bool", "on", "ignoring", "group_left", "offset",
}  # fmt: skip


def _panels(items):
    for panel in items:
        yield panel
        yield from _panels(panel.get("panels", []))


def _exprs(dashboard):
    for panel in _panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            yield variable["name"], query["query"] if isinstance(query, dict) else query


def _sample_families():
    return {sample: f for f in FAMILIES.values() for sample in f.sample_names}


def test_the_dashboard_queries_only_metrics_and_labels_the_exporter_serves():
    dashboard = json.loads(DASHBOARD.read_text())
    by_sample = _sample_families()
    queried = set()
    for where, expr in _exprs(dashboard):
        bare = re.sub(r'"[^"]*"', '""', expr)  # label values and strings are not names
        bare = re.sub(r"\[[^\]]*\]", "", bare)  # nor are range selectors
        names = set(re.findall(r"\bturnout_[a-zA-Z0-9_]+", bare))
        assert names, f"{where}: {expr} reads no turnout metric"
        unknown = names - set(by_sample)
        assert not unknown, f"{where}: {expr} reads {unknown}, which the exporter never serves"
        queried |= {by_sample[n].name for n in names}
        allowed = {"le", "job", "instance"} | {
            label for n in names for label in by_sample[n].labels
        }
        used = set()
        for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", bare):
            used |= {label.strip() for label in group.split(",") if label.strip()}
        for matchers in re.findall(r"\{([^}]*)\}", bare):
            used |= set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", matchers))
        if where in {v["name"] for v in dashboard["templating"]["list"]}:
            used |= set(re.findall(r",\s*([a-zA-Z_]+)\s*\)\s*$", bare))
        assert used <= allowed, f"{where}: {expr} uses labels {used - allowed}"
        words = set(re.findall(r"\b([a-z_]+)\s*\(", bare)) - {"by", "without"}
        assert words <= PROMQL_WORDS, f"{where}: unexpected functions {words - PROMQL_WORDS}"
    expected = {
        "turnout_up",
        "turnout_provider_requests_total",
        "turnout_provider_errors_total",
        "turnout_provider_latency_seconds",
        "turnout_provider_tokens_total",
        "turnout_provider_cost_usd_total",
        "turnout_breaker_state",
        "turnout_route_healthy",
        "turnout_route_in_flight",
        "turnout_queue_length",
        "turnout_jobs",
        "turnout_jobs_today",
    }
    assert expected <= queried, f"no panel shows {expected - queried}"


def test_the_dashboard_is_well_formed_and_uses_the_provisioned_datasource():
    dashboard = json.loads(DASHBOARD.read_text())
    datasources = yaml.safe_load(
        (MONITORING / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"]
    (prometheus,) = datasources
    assert (prometheus["type"], prometheus["url"]) == ("prometheus", "http://prometheus:9090")
    panels = list(_panels(dashboard["panels"]))
    assert len({p["id"] for p in panels}) == len(panels), "panel ids are unique"
    assert dashboard["uid"] == "turnout-fleet"
    for panel in panels:
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == prometheus["uid"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == prometheus["uid"], panel["title"]
            assert target["refId"]
    quantiles = [e for _, e in _exprs(dashboard) if "histogram_quantile" in e]
    assert any("0.5," in e for e in quantiles)
    assert any("0.95," in e for e in quantiles)
    assert all("_bucket" in e and "le)" in e for e in quantiles), "aggregated by le"


def test_prometheus_scrapes_the_exporter_every_15s():
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    turnout = jobs["turnout"]
    assert turnout["static_configs"][0]["targets"] == ["exporter:9464"]
    assert turnout.get("scrape_interval", config["global"]["scrape_interval"]) == "15s"
    flower = jobs["flower"]
    assert flower["static_configs"][0]["targets"] == ["flower:5555"]
    assert set(flower["basic_auth"]) == {"username_file", "password_file"}, "no password here"


def test_grafana_loads_the_dashboards_folder_compose_mounts():
    providers = yaml.safe_load(
        (MONITORING / "grafana/provisioning/dashboards/turnout.yml").read_text()
    )["providers"]
    (provider,) = providers
    assert provider["type"] == "file"
    compose = yaml.safe_load((MONITORING.parents[1] / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./ops/monitoring/grafana/dashboards:{provider['options']['path']}:ro" in mounts
