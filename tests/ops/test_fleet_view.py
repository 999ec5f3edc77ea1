"""What ``turnout status`` reads and renders, against a real Redis."""

from __future__ import annotations

import redis
from rich.console import Console

from ops.fleet_view import FleetReader, all_routes, as_json, as_tables
from routing.config import parse_config
from routing.fleet_router import FleetRouter
from routing.keys import Keys
from routing.routes import CallOutcome, Spent
from routing.settings import CoreSettings
from workers.presence import SEEN_WITHIN_S, WorkerPresence

CONFIG = parse_config(
    {
        "deployments": [
            {"id": "primary", "provider": "openai", "model": "gpt-4o-mini"},
            {"id": "secondary", "provider": "groq", "model": "llama-3.1-8b-instant"},
        ],
        "policies": {"default": {"targets": ["primary", "secondary"]}},
    },
    source="test.yaml",
)


def settings(redis_url: str, namespace: str) -> CoreSettings:
    return CoreSettings.model_validate({"REDIS_URL": redis_url, "TURNOUT_NAMESPACE": namespace})


def status_connections(client: redis.Redis, namespace: str) -> list[int]:
    name = f"turnout-status:{namespace}"
    return sorted(int(c["id"]) for c in client.client_list() if c.get("name") == name)


def test_every_refresh_reads_on_the_same_connection(redis_url, namespace, redis_client):
    with FleetReader(settings(redis_url, namespace), CONFIG) as reader:
        reader.read()
        first = status_connections(redis_client, namespace)
        for _ in range(3):
            reader.read()
        assert first == status_connections(redis_client, namespace)
        assert len(first) == 1, "one Redis for jobs and breakers: one client"
    assert status_connections(redis_client, namespace) == [], "closed with the reader"


def test_the_reading_carries_redis_clock_and_the_days_spend(redis_url, namespace, redis_client):
    router = FleetRouter(redis_client, Keys(namespace).route_prefix)
    for route, cost in zip(all_routes(CONFIG), (0.25, 0.5), strict=True):
        grant = router.acquire([route], order="given", tokens=1).grant
        assert grant is not None
        router.record(grant, CallOutcome(error_class=None, latency_s=0.1, spent=Spent(1, 1, cost)))
    with FleetReader(settings(redis_url, namespace), CONFIG) as reader:
        view = reader.read()
    seconds, micros = redis_client.time()
    assert 0 <= seconds + micros / 1e6 - view.read_at < 5
    assert as_json(view)["spent_today_usd"] == 0.75
    console = Console(width=200, record=True)
    console.print(as_tables(view))
    shown = console.export_text()
    assert "Spent today (UTC): $0.7500" in shown
    assert "100 / 100 ms" in shown, "measured latencies, no bucket bound"


def test_workers_online_are_those_announced_lately_and_not_retired(
    redis_url, namespace, redis_client
):
    keys = Keys(namespace)
    here = WorkerPresence(redis_client, keys, worker_id="w1@host:1", concurrency=8)
    there = WorkerPresence(redis_client, keys, worker_id="w2@host:2", concurrency=4)
    gone = WorkerPresence(redis_client, keys, worker_id="w3@host:3", concurrency=2)
    for presence in (here, there, gone):
        presence.announce()
    stale_ms = (int(redis_client.time()[0]) - int(SEEN_WITHIN_S) - 1) * 1000
    redis_client.zadd(keys.workers, {"w3@host:3": stale_ms})  # it stopped announcing
    there.start()
    there.stop()  # a clean shutdown takes it off
    with FleetReader(settings(redis_url, namespace), CONFIG) as reader:
        view = reader.read()
    assert [(w.worker_id, w.concurrency) for w in view.workers] == [("w1@host:1", 8)]
    assert view.workers[0].pid is not None
    assert as_json(view)["workers"][0]["concurrency"] == 8
