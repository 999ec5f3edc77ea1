"""The exporter scraped over HTTP on a real stack: a worker runs jobs against the simulators
(successes, a failed job, a failover that opens the primary's breaker), then ``turnout
exporter`` (its typer command, in its own process) is scraped, and every count and state it
serves matches what the jobs' attempt logs and Redis say."""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ops.fleet_view import all_routes
from ops.polling import poll_until
from ops.simulator.server import LOOPBACK, free_port
from ops.stack import ChildProcess
from routing.config import load_config
from routing.fleet_status import read_route_status
from routing.keys import Keys
from routing.models import CompletionResult, JobState
from routing.routes import LATENCY_BUCKETS_S, latency_bucket
from tests.integration.conftest import make_stack, run_cli, tear_down
from tests.integration.harness import Worker

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class Exporter:
    """``exporter`` as the CLI runs it, in a subprocess on a free loopback port."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.port = free_port()
        command = "import typer; from ops.exporter import exporter; typer.run(exporter)"
        self.process = ChildProcess(
            "exporter",
            [sys.executable, "-c", command, "--port", str(self.port), "--host", LOOPBACK],
            env=env,
            log_dir=log_dir,
        )

    def scrape(self, timeout_s: float = 15.0) -> tuple[str, str]:
        """The body and content type of /metrics, once the exporter answers."""
        url = f"http://{LOOPBACK}:{self.port}/metrics"

        def scraped() -> tuple[str, str] | None:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    return response.read().decode(), response.headers["Content-Type"]
            except (urllib.error.URLError, ConnectionError):
                return None

        return self.process.wait_until(
            scraped, timeout_s=timeout_s, what="answer at /metrics", interval_s=0.1
        )

    def log(self) -> str:
        return self.process.log()

    def stop(self) -> int:
        return self.process.stop()


def run_jobs(live) -> list[CompletionResult]:
    """3 served by the primary, 1 failed (a 400 everywhere), 4 failed over to the secondary
    (its 503s open the primary's breaker on the way). The secondary answers in ~120 ms, so its
    calls land in another latency bucket than the primary's."""
    live.secondary.set_faults(latency_ms=120)
    results = []
    with live.client() as client:

        def run(n: int) -> None:
            for i in range(n):
                handle = client.submit({"messages": [{"role": "user", "content": f"job {i}"}]})
                results.append(handle.wait(timeout=30))

        run(3)
        live.primary.set_faults(fail_rate=1.0, fail_status=400)
        run(1)
        live.primary.set_faults(fail_rate=1.0, fail_status=503)
        run(4)
    return results


def samples_of(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def route(name: str, **extra: str) -> frozenset[tuple[str, str]]:
    return frozenset({"route": name, "deployment": name, "provider": "openai", **extra}.items())


@pytest.fixture
def exporter(live, tmp_path):
    running = Exporter(live.env, tmp_path)
    yield running
    running.stop()


def test_a_scrape_matches_what_the_jobs_did(live, exporter):
    started = time.monotonic()
    results = run_jobs(live)
    states = Counter(r.state for r in results)
    assert states == {JobState.SUCCEEDED: 7, JobState.FAILED: 1}
    calls = [a for r in results for a in r.attempts if a.outcome != "skipped"]
    assert any(a.outcome == "overloaded" for a in calls), "the primary's 503s were calls"
    assert any(a.outcome == "skipped" for r in results for a in r.attempts), "and it opened"

    text, content_type = exporter.scrape()
    assert content_type.startswith("text/plain")
    samples = samples_of(text)
    assert samples[("turnout_up", frozenset())] == 1

    for name in ("primary", "secondary"):
        mine = [a for a in calls if a.deployment == name]
        assert samples[("turnout_provider_requests_total", route(name))] == len(mine)
        errors = Counter(a.outcome for a in mine if a.outcome != "ok")
        served = {
            dict(labels)["class"]: value
            for (metric, labels), value in samples.items()
            if metric == "turnout_provider_errors_total" and dict(labels)["route"] == name
        }
        assert {c: v for c, v in served.items() if v} == errors, name

        expected_buckets = Counter(latency_bucket(a.latency_ms / 1000) for a in mine)
        cumulative = 0
        for index, bound in enumerate((*LATENCY_BUCKETS_S, None)):
            cumulative += expected_buckets[index]
            le = "+Inf" if bound is None else repr(float(bound))
            bucket = ("turnout_provider_latency_seconds_bucket", route(name, le=le))
            assert samples[bucket] == cumulative, (name, le)
        assert samples[("turnout_provider_latency_seconds_count", route(name))] == len(mine)
        latency_sum = samples[("turnout_provider_latency_seconds_sum", route(name))]
        assert latency_sum == pytest.approx(
            sum(a.latency_ms for a in mine) / 1000, abs=0.0011 * len(mine)
        ), "whole milliseconds per call"

        served_here = [r for r in results if r.deployment == name]
        for kind in ("prompt", "completion"):
            tokens = sum(getattr(r.usage, f"{kind}_tokens") for r in served_here if r.usage)
            metric = ("turnout_provider_tokens_total", route(name, kind=kind))
            assert samples[metric] == tokens, (name, kind)
        cost = sum(r.cost_usd or 0.0 for r in served_here)
        assert cost > 0
        served_cost = samples[("turnout_provider_cost_usd_total", route(name))]
        assert served_cost == pytest.approx(cost, rel=1e-9)
        assert samples[("turnout_route_in_flight", route(name))] == 0
        assert ("turnout_route_healthy", route(name)) not in samples, "no beat, never checked"

    config = load_config(live.config)
    with live.redis() as client:
        statuses = read_route_status(client, Keys(live.namespace).route_prefix, all_routes(config))
    for status in statuses:
        one_hot = {
            state: samples[("turnout_breaker_state", route(status.route_id, state=state))]
            for state in ("closed", "open", "half_open")
        }
        assert one_hot == {s: (1 if s == status.state else 0) for s in one_hot}
    assert {s.route_id: s.state for s in statuses} == {"primary": "open", "secondary": "closed"}

    jobs = {
        (metric, dict(labels)["state"]): value
        for (metric, labels), value in samples.items()
        if metric in ("turnout_jobs", "turnout_jobs_today")
    }
    assert jobs == {
        ("turnout_jobs", "queued"): 0,
        ("turnout_jobs", "running"): 0,
        ("turnout_jobs_today", "created"): 8,
        ("turnout_jobs_today", "succeeded"): 7,
        ("turnout_jobs_today", "failed"): 1,
    }
    assert samples[("turnout_queue_length", frozenset({"queue": "jobs"}.items()))] == 0

    assert exporter.stop() == 0, f"SIGTERM stops it cleanly:\n{exporter.log()}"
    assert time.monotonic() - started < 30


def test_a_worker_is_online_while_it_runs_and_gone_once_stopped(redis_url, tmp_path):
    """Presence end to end: a real worker appears in ``turnout status --json`` with its
    concurrency, and the exporter's gauges say the same; a SIGTERM takes it off both at once
    (a clean shutdown retires its announcement; no waiting out SEEN_WITHIN_S)."""
    fresh = make_stack(redis_url, tmp_path, worker=False)
    worker = Worker(fresh.env, tmp_path / "worker.log", concurrency=3)
    exporter = Exporter(fresh.env, tmp_path)
    try:

        def online() -> tuple[list[dict[str, object]], Samples]:
            shown = run_cli(["status", "--json"], fresh.env)
            assert shown.returncode == 0, shown.stderr
            return json.loads(shown.stdout)["workers"], samples_of(exporter.scrape()[0])

        workers, samples = online()
        assert workers == []
        assert samples[("turnout_workers_online", frozenset())] == 0

        worker.start()
        assert worker.process is not None
        seen = poll_until(lambda: online()[0], timeout_s=15, interval_s=0.2)
        assert seen, f"the worker never announced itself:\n{worker.log()}"
        (me,) = seen
        assert (me["concurrency"], me["pid"]) == (3, worker.process.pid)
        samples = samples_of(exporter.scrape()[0])
        assert samples[("turnout_workers_online", frozenset())] == 1
        assert samples[("turnout_worker_concurrency", frozenset())] == 3

        stopped_at = time.monotonic()
        assert worker.process.stop() == 0, worker.log()
        workers, samples = online()
        assert workers == [], "a clean stop retires it at once"
        assert time.monotonic() - stopped_at < 30
        assert samples[("turnout_workers_online", frozenset())] == 0
        assert samples[("turnout_worker_concurrency", frozenset())] == 0
    finally:
        worker.stop()
        exporter.stop()
        tear_down(fresh)
