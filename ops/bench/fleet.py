"""What the fleet-wide breaker costs and what it saves.

routing_cost   microseconds and Redis round trips routing adds to one attempt (acquire before the
               call, record after it), beside a Redis PING measured in the same run.
wasted_calls   calls a fleet of worker processes sends to a provider from the moment it dies until
               the fleet stops using it: the fleet breaker against each worker's own breaker with
               the same thresholds (the workers' breaker Redis pointed at a closed port, so each
               falls back to routing.breaker in-process, exactly as it would in an incident).
"""

from __future__ import annotations

import os
import secrets
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import yaml

from ops.embedded_redis import EmbeddedRedis, redis_answers
from ops.redis_namespace import delete_namespace
from ops.simulator import OpenAISimulator
from ops.simulator.server import ServerThread, free_port
from ops.stack import ChildProcess, stop_all, worker_command
from routing.breaker import BreakerSettings
from routing.config import DeploymentConfig
from routing.errors import ErrorClass
from routing.fleet_router import FleetRouter
from routing.keys import Keys
from routing.local_router import LocalRouter
from routing.routes import CallOutcome, Route, Router


class _CountingRedis(redis.Redis):
    """Counts the commands this client sends: each is one round trip (no pipelines here)."""

    sent = 0

    def execute_command(self, *args: Any, **options: Any) -> Any:
        type(self).sent += 1
        return super().execute_command(*args, **options)  # type: ignore[no-untyped-call]


def _routes(count: int) -> list[Route]:
    settings = BreakerSettings()
    return [
        Route(DeploymentConfig(id=f"d{n}", provider="openai", model="m"), None, settings, 6000)
        for n in range(count)
    ]


def _time_attempts(router: Router, routes: list[Route], attempts: int) -> float:
    """Median microseconds of acquire + record for one successful attempt."""
    samples = []
    for _ in range(attempts):
        started = time.perf_counter()
        acquired = router.acquire(routes, order="given", tokens=100, hold_s=60)
        assert acquired.grant is not None
        router.record(acquired.grant, CallOutcome(error_class=None, latency_s=0.2))
        samples.append((time.perf_counter() - started) * 1e6)
    return statistics.median(samples)


def routing_cost(attempts: int = 5000) -> dict[str, float]:
    """Per attempt: the fleet router (closed first route; first route open), the local router,
    and a Redis PING for scale. An embedded Redis keeps other clients out of the count."""
    with EmbeddedRedis() as server:
        client = _CountingRedis.from_url(server.url)
        pings = []
        for _ in range(attempts):
            started = time.perf_counter()
            client.ping()
            pings.append((time.perf_counter() - started) * 1e6)
        fleet = FleetRouter(client, Keys("bench").route_prefix)
        routes = _routes(3)
        _time_attempts(fleet, routes, 200)  # scripts loaded, connection warm
        before = _CountingRedis.sent
        closed_us = _time_attempts(fleet, routes, attempts)
        trips = (_CountingRedis.sent - before) / attempts
        for _ in range(5):  # open the first route: every acquire now walks past it
            grant = fleet.acquire(routes[:1], order="given", tokens=1).grant
            assert grant is not None
            fleet.record(grant, CallOutcome(error_class=ErrorClass.OVERLOADED, latency_s=0.1))
        open_us = _time_attempts(fleet, routes, attempts)
        local_us = _time_attempts(LocalRouter(), routes, attempts)
        client.close()
    return {
        "ping_us": statistics.median(pings),
        "fleet_us": closed_us,
        "fleet_past_open_us": open_us,
        "local_us": local_us,
        "round_trips": trips,
    }


@dataclass
class _Fleet:
    env: dict[str, str]
    primary: ServerThread
    primary_app: OpenAISimulator
    secondary: ServerThread
    workdir: Path


@contextmanager
def _fleet_stack(redis_url: str, *, cooldown_s: float, concurrency: int) -> Iterator[_Fleet]:
    workdir = Path(tempfile.mkdtemp(prefix="turnout-fleet-bench-"))
    key = f"bench-{secrets.token_hex(12)}"
    primary_app = OpenAISimulator(name="primary", api_key=key)
    primary = ServerThread(primary_app).start()
    secondary = ServerThread(OpenAISimulator(name="secondary", api_key=key)).start()
    config = workdir / "turnout.yaml"
    deployments = [
        {
            "id": name,
            "provider": "openai",
            "model": "sim-model",
            "base_url": f"{server.url}/v1",
            "api_key_env": "BENCH_SIM_KEY",
        }
        for name, server in (("primary", primary), ("secondary", secondary))
    ]
    policy = {
        "targets": ["primary", "secondary"],
        "deadline_s": 60,
        "retries_per_target": 1,
        "backoff_base_s": 0.05,
    }
    config.write_text(
        yaml.safe_dump(
            {
                "deployments": deployments,
                "policies": {"default": policy},
                # The documented defaults, but for the cool-down (so probes show in a short run).
                "breaker": {"cooldown_s": cooldown_s, "cooldown_max_s": max(300, cooldown_s)},
            }
        )
    )
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "TURNOUT_CONFIG": str(config),
        "TURNOUT_CONCURRENCY": str(concurrency),
        "BENCH_SIM_KEY": key,
    }
    try:
        yield _Fleet(env, primary, primary_app, secondary, workdir)
    finally:
        primary.stop()
        secondary.stop()


def _start_workers(env: dict[str, str], count: int, workdir: Path) -> list[ChildProcess]:
    return [
        ChildProcess(
            f"worker-{n}",
            worker_command(
                concurrency=int(env["TURNOUT_CONCURRENCY"]),
                loglevel="warning",
                hostname=f"bench{n}-{secrets.token_hex(3)}@%h",
                heartbeat=False,
            ),
            env=env,
            log_dir=workdir,
            grace_s=60,
        )
        for n in range(count)
    ]


def wasted_calls(
    *,
    scope: str,
    workers: int = 4,
    concurrency: int = 8,
    rate: float = 40.0,
    before_s: float = 3.0,
    after_s: float = 12.0,
    cooldown_s: float = 30.0,
) -> dict[str, float]:
    """Jobs at ``rate`` per second; the primary dies ``before_s`` in; count what it receives."""
    from producers.client import Client
    from workers.settings import WorkerSettings

    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    embedded = None if redis_answers(url) else EmbeddedRedis().start()
    redis_url = embedded.url if embedded else url
    namespace = f"bench-{secrets.token_hex(4)}"
    with _fleet_stack(redis_url, cooldown_s=cooldown_s, concurrency=concurrency) as stack:
        env = {**stack.env, "TURNOUT_NAMESPACE": namespace}
        if scope == "process":
            env["TURNOUT_BREAKER_REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
        settings = WorkerSettings.model_validate(
            {k: v for k, v in env.items() if k.startswith(("TURNOUT_", "REDIS_URL"))}
        )
        processes = _start_workers(env, workers, stack.workdir)
        client = Client(settings=settings)
        try:
            client.complete("warm up", timeout=60)
            handles = []
            died_at = 0.0
            started = time.monotonic()
            sent = 0
            while (elapsed := time.monotonic() - started) < before_s + after_s:
                if not died_at and elapsed >= before_s:
                    stack.primary_app.state.faults = stack.primary_app.state.faults.updated(
                        {"fail_rate": 1.0, "fail_status": 503}
                    )
                    died_at = time.time()
                while sent < elapsed * rate:
                    handles.append(client.submit(f"job {sent}"))
                    sent += 1
                time.sleep(0.005)
            results = [handle.wait(timeout=120) for handle in handles]
        finally:
            client.close()
            stop_all(processes)
            with redis.Redis.from_url(redis_url) as main:
                delete_namespace(main, namespace)
            if embedded:
                embedded.stop()
        arrivals = sorted(stack.primary_app.state.stats.arrivals)
    wasted = [t - died_at for t in arrivals if t >= died_at]
    trip = [t for t in wasted if t < cooldown_s * 0.5]
    return {
        "jobs": len(results),
        "succeeded": sum(r.state.value == "succeeded" for r in results),
        "wasted": len(wasted),
        "trip": len(trip),
        "probes": len(wasted) - len(trip),
        "stopped_after_s": max(trip) if trip else 0.0,
    }
