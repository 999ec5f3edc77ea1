"""The fleet-wide breaker and rate limits with real worker processes, Redis and simulators.

What a per-process breaker cannot do: one worker's failures stop every worker, half-open probes
are counted fleet-wide, and rate limits hold across processes. Cool-downs are shortened through
the config's ``breaker:`` section, never by weakening what is asserted.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from ops.embedded_redis import EmbeddedRedis
from ops.polling import poll_until
from ops.redis_namespace import delete_namespace
from producers.client import Client, JobHandle
from routing.errors import ErrorClass, JobFailed
from routing.keys import Keys
from routing.models import CompletionResult, JobState
from tests.integration.conftest import run_cli
from tests.integration.harness import Sim, Worker, settings_for, stack_env, write_config

#: Worker processes in "the fleet"; each runs ``CONCURRENCY`` jobs at once.
FLEET = 3
CONCURRENCY = 2


@dataclass
class Fleet:
    namespace: str
    env: dict[str, str]
    primary: Sim
    secondary: Sim
    workers: list[Worker]
    client: Client
    breaker_redis: redis.Redis

    def route(self, route_id: str) -> dict[str, str]:
        """The fleet's breaker record of a route, as the Lua scripts keep it."""
        key = Keys(self.namespace).route(route_id).breaker
        return self.route_hash(key)

    def window_calls(self, route_id: str) -> int:
        """Calls the fleet recorded for a route in its failure-rate window."""
        key = Keys(self.namespace).route(route_id).window
        counts = self.route_hash(key)
        return sum(int(v) for k, v in counts.items() if k.startswith("c"))

    def route_hash(self, key: str) -> dict[str, str]:
        return {_str(k): _str(v) for k, v in self.breaker_redis.hgetall(key).items()}

    def wait_for_state(
        self, route_id: str, predicate: Any, timeout_s: float = 20
    ) -> dict[str, str]:
        seen: list[dict[str, str]] = []

        def reached() -> bool:
            seen[:] = [self.route(route_id)]  # kept for the message, and as what is returned
            return bool(predicate(seen[0]))

        reached_in_time = poll_until(reached, timeout_s=timeout_s, interval_s=0.02)
        assert reached_in_time, f"{route_id} stayed {seen[0]}"
        return seen[0]

    def submit(self, count: int, **options: Any) -> list[JobHandle]:
        return [self.client.submit(f"job {i}", **options) for i in range(count)]

    def run(self, count: int, **options: Any) -> list[CompletionResult]:
        return [handle.wait(timeout=90) for handle in self.submit(count, **options)]

    def logs(self) -> str:
        return "\n".join(worker.log() for worker in self.workers)


@contextmanager
def running_fleet(
    redis_url: str,
    directory: Path,
    *,
    workers: int = FLEET,
    concurrency: int = CONCURRENCY,
    breaker: dict[str, Any] | None = None,
    policy: dict[str, Any] | None = None,
    deployments: dict[str, dict[str, Any]] | None = None,
    breaker_redis_url: str | None = None,
) -> Iterator[Fleet]:
    namespace = f"t-{time.monotonic_ns()}"
    primary = Sim("primary", key="sim-primary-key-fleet")
    secondary = Sim("secondary", key="sim-secondary-key-fleet")
    config = write_config(
        directory / "turnout.yaml",
        [primary, secondary],
        policy=policy,
        breaker=breaker,
        deployments=deployments,
    )
    extra = {"TURNOUT_BREAKER_REDIS_URL": breaker_redis_url} if breaker_redis_url else {}
    env = stack_env(redis_url, namespace, config, [primary, secondary], **extra)
    fleet = [
        Worker(env, directory / f"worker-{n}.log", concurrency=concurrency) for n in range(workers)
    ]
    client = Client(settings=settings_for(env))
    breaker_redis = redis.Redis.from_url(breaker_redis_url or redis_url, decode_responses=True)
    try:
        for worker in fleet:
            worker.start(wait=False)
        for worker in fleet:
            worker.wait_ready()
        yield Fleet(namespace, env, primary, secondary, fleet, client, breaker_redis)
    finally:
        client.close()
        for worker in fleet:
            worker.stop()
        primary.stop()
        secondary.stop()
        with redis.Redis.from_url(redis_url) as main:
            delete_namespace(main, namespace)
        breaker_redis.close()


def _str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def arrivals(sim: Sim) -> list[float]:
    return sorted(float(t) for t in sim.stats()["arrivals"])


def calls_to(result: CompletionResult, deployment: str) -> list[Any]:
    return [a for a in result.attempts if a.deployment == deployment and a.outcome != "skipped"]


def test_a_dead_primary_gets_the_trip_threshold_from_the_fleet_not_from_each_worker(
    redis_url, tmp_path
):
    threshold = 5
    breaker = {"consecutive_failures": threshold, "cooldown_s": 120}
    with running_fleet(redis_url, tmp_path, breaker=breaker) as fleet:
        fleet.primary.set_faults(fail_rate=1.0, fail_status=503)
        results = fleet.run(300)

        assert {(r.state, r.deployment) for r in results} == {(JobState.SUCCEEDED, "secondary")}
        opened_at = int(fleet.route("primary")["opened_at"]) / 1000
        started = sorted(a.started_at for r in results for a in calls_to(r, "primary"))
        sent = len(arrivals(fleet.primary))
        print(
            f"\n300 jobs, {FLEET} workers x {CONCURRENCY}: the dead primary got {sent} calls "
            f"(trip threshold {threshold}; per-process breakers would allow "
            f"{threshold * FLEET})"
        )
        assert sent == len(started), "every call the primary saw is in an attempt log"
        assert all(t < opened_at + 0.25 for t in started), (
            "no worker started a call to the primary once the fleet's breaker had opened"
        )
        # Calls already in flight on other slots when the breaker opened still land.
        assert sent <= threshold + FLEET * CONCURRENCY - 1
        assert sent < threshold * FLEET
        skipped = [
            a for r in results for a in r.attempts if a.outcome == "skipped" and a.reason == "open"
        ]
        assert len(skipped) >= 250, "jobs after the trip say why they passed the primary over"


def test_a_retry_after_cools_the_primary_fleet_wide_for_exactly_that_long(redis_url, tmp_path):
    retry_after = 1.5
    with running_fleet(redis_url, tmp_path, breaker={"cooldown_s": 120}) as fleet:
        fleet.primary.set_faults(fail_rate=1.0, fail_status=429, retry_after_s=retry_after)
        handles: list[JobHandle] = []
        for _wave in range(10):
            handles += fleet.submit(20)
            time.sleep(0.4)
        results = [handle.wait(timeout=90) for handle in handles]

        assert {(r.state, r.deployment) for r in results} == {(JobState.SUCCEEDED, "secondary")}
        times = arrivals(fleet.primary)
        bursts = [[times[0]]]
        for t in times[1:]:
            if t - bursts[-1][0] < 0.25:
                bursts[-1].append(t)  # in flight together before the first 429 came back
            else:
                gap = t - bursts[-1][0]
                assert gap >= retry_after - 0.05, (
                    f"the primary was called {gap:.2f}s after a 429 asking for {retry_after}s"
                )
                bursts.append([t])
        print(
            f"\n200 jobs over 4s: the 429ing primary got {len(times)} calls in "
            f"{len(bursts)} bursts, each after its Retry-After"
        )
        assert len(bursts) >= 2, "the run spans several Retry-After periods"
        assert int(fleet.route("primary").get("consecutive") or 0) == 0, (
            "a 429 with Retry-After cools the route; it does not count toward tripping it"
        )


def test_half_open_lets_only_the_permitted_probes_through_from_a_busy_fleet(redis_url, tmp_path):
    permits = 2
    breaker = {
        "consecutive_failures": 3,
        "cooldown_s": 1.0,
        "cooldown_jitter": 0.0,
        "half_open_permits": permits,
    }
    with running_fleet(redis_url, tmp_path, breaker=breaker, concurrency=4) as fleet:
        fleet.primary.set_faults(fail_rate=1.0, fail_status=503)
        handles: list[JobHandle] = []
        stop = threading.Event()

        def feed() -> None:
            while not stop.is_set():
                handles.append(fleet.client.submit("keep the fleet busy"))
                time.sleep(0.02)

        feeder = threading.Thread(target=feed)
        feeder.start()
        try:
            first = fleet.wait_for_state("primary", lambda b: b.get("state") == "open")
            opened_at = int(first["opened_at"]) / 1000
            # Probes now hang long enough for every busy slot to ask for the primary meanwhile.
            fleet.primary.set_faults(fail_rate=1.0, fail_status=503, latency_ms=1500)
            reopened = fleet.wait_for_state(
                "primary", lambda b: int(b.get("opened_at") or 0) / 1000 > opened_at + 0.5
            )
            verdict_at = int(reopened["opened_at"]) / 1000
            probes = [t for t in arrivals(fleet.primary) if opened_at + 0.25 < t < verdict_at]
            print(
                f"\nhalf-open with {FLEET} workers x 4 busy: {len(probes)} probe calls "
                f"(permits {permits}) before the verdict"
            )
            assert 1 <= len(probes) <= permits
            assert reopened["reason"] == "probe failed"
            assert int(reopened["open_until"]) - int(reopened["opened_at"]) == 2000, (
                "the second cool-down is twice the first"
            )

            fleet.primary.reset()  # the provider recovers: the next probe closes the breaker
            fleet.wait_for_state("primary", lambda b: b.get("state") == "closed", timeout_s=10)
        finally:
            stop.set()
            feeder.join()
        results = [handle.wait(timeout=90) for handle in handles]
        assert all(r.state is JobState.SUCCEEDED for r in results)
        after = fleet.run(10)
        assert {r.deployment for r in after} == {"primary"}, "traffic fails back once closed"


def test_jobs_flow_on_per_process_breakers_while_the_breaker_redis_is_paused(redis_url, tmp_path):
    threshold = 3
    with (
        EmbeddedRedis() as breaker_store,
        running_fleet(
            redis_url,
            tmp_path,
            workers=2,
            breaker={"consecutive_failures": threshold, "cooldown_s": 120},
            breaker_redis_url=breaker_store.url,
        ) as fleet,
    ):
        assert {r.deployment for r in fleet.run(10)} == {"primary"}
        calls_before = fleet.window_calls("primary")
        assert calls_before == 10

        fleet.primary.reset()
        fleet.primary.set_faults(fail_rate=1.0, fail_status=503)
        pause_s = 6.0
        with redis.Redis.from_url(breaker_store.url) as pauser:
            pauser.execute_command("CLIENT", "PAUSE", int(pause_s * 1000), "ALL")
        paused_at = time.monotonic()
        paused = fleet.run(40)
        assert time.monotonic() - paused_at < pause_s, "the run fits inside the pause"

        assert {(r.state, r.deployment) for r in paused} == {(JobState.SUCCEEDED, "secondary")}
        durations = [r.finished_at - r.started_at for r in paused if r.finished_at and r.started_at]
        print(
            f"\nbreaker Redis paused: 40 jobs, slowest {max(durations):.2f}s; the dead primary "
            f"got {fleet.primary.chat_requests()} calls from 2 per-process breakers"
        )
        assert max(durations) < 1.5, "no job waited on the paused Redis past its socket timeout"
        assert fleet.primary.chat_requests() <= 2 * (threshold + CONCURRENCY - 1), (
            "each worker's own breaker tripped: the fallback is never 'always closed'"
        )
        assert "per-process breaker" in fleet.logs()

        fleet.primary.reset()
        time.sleep(max(0.0, pause_s - (time.monotonic() - paused_at)) + 5.5)
        back = fleet.run(10)
        assert {r.deployment for r in back} == {"primary"}, (
            "the fleet's state (the primary is closed there) is used again"
        )
        assert fleet.window_calls("primary") == calls_before + 10, "recorded in the fleet again"
        assert "back on the fleet's breaker" in fleet.logs()


def test_every_target_dark_fails_at_once_or_waits_for_the_first_to_return(redis_url, tmp_path):
    cooldown = 5.0  # longer than the short wait (2 s) a worker spends in place
    breaker = {"consecutive_failures": 1, "cooldown_s": cooldown, "cooldown_jitter": 0.0}
    with running_fleet(redis_url, tmp_path, workers=1, breaker=breaker) as fleet:
        fleet.primary.set_faults(fail_rate=1.0, fail_status=503)
        fleet.secondary.set_faults(fail_rate=1.0, fail_status=503)
        fail_fast = {
            "targets": ["primary", "secondary"],
            "on_all_unavailable": "fail",
            "deadline_s": 8,
        }
        with pytest.raises(JobFailed) as tripping:
            fleet.client.complete("trip them both", policy=fail_fast, timeout=30)
        assert [(a.deployment, a.outcome, a.reason) for a in tripping.value.result.attempts] == [
            ("primary", "overloaded", None),
            ("primary", "skipped", "open"),
            ("secondary", "overloaded", None),
            ("secondary", "skipped", "open"),
        ], "each opened on its first failure; its retry found it open"

        started = time.monotonic()
        with pytest.raises(JobFailed) as caught:
            fleet.client.complete("fail fast", policy=fail_fast, timeout=30)
        assert time.monotonic() - started < 2
        failed = caught.value.result
        assert failed.error is not None
        assert failed.error.error_class is ErrorClass.ALL_UNAVAILABLE
        assert "primary: open (1 consecutive failures)" in failed.error.message
        assert "secondary: open (1 consecutive failures)" in failed.error.message
        assert [(a.deployment, a.outcome, a.reason) for a in failed.attempts] == [
            ("primary", "skipped", "open"),
            ("secondary", "skipped", "open"),
        ]
        assert fleet.primary.chat_requests() == fleet.secondary.chat_requests() == 1

        shown = run_cli(["status", "--json"], fleet.env)
        assert shown.returncode == 0, shown.stderr
        routes = {row["id"]: row for row in json.loads(shown.stdout)["deployments"]}
        assert routes["primary"]["state"] == "open"
        assert routes["primary"]["reason"] == "1 consecutive failures"
        assert routes["primary"]["open_until"] > time.time()

        waiting = fleet.client.submit(
            "wait for one",
            policy={"targets": ["primary", "secondary"], "deadline_s": 8},
        )
        fleet.secondary.reset()  # it recovers while the job waits
        result = waiting.wait(timeout=30)
        assert result.state is JobState.SUCCEEDED
        assert result.deployment == "secondary"
        assert result.finished_at is not None
        assert result.created_at is not None
        assert result.finished_at - result.created_at > 1.0, "it waited for the cool-down"
        assert ("secondary", "skipped", "open") in [
            (a.deployment, a.outcome, a.reason) for a in result.attempts
        ]
        assert "rescheduled" in fleet.logs(), "a wait past the short threshold freed the slot"


def test_cheapest_and_fastest_choose_by_price_and_by_measured_latency(redis_url, tmp_path):
    deployments = {"primary": {"input_cost_per_mtok": 5.0, "output_cost_per_mtok": 15.0}}
    with running_fleet(redis_url, tmp_path, workers=1, deployments=deployments) as fleet:
        cheapest = {"targets": ["primary", "secondary"], "strategy": "cheapest", "deadline_s": 8}
        assert {r.deployment for r in fleet.run(10, policy=cheapest)} == {"secondary"}
        assert fleet.primary.chat_requests() == 0

        fleet.primary.set_faults(latency_ms=200)
        fastest = {"targets": ["primary", "secondary"], "strategy": "fastest", "deadline_s": 8}
        chosen = [
            fleet.client.complete(f"job {i}", policy=fastest, timeout=30).deployment
            for i in range(8)
        ]
        lat = {name: float(fleet.route(name)["lat"]) for name in ("primary", "secondary")}
        print(f"\nfastest: measured latency (ms) {lat}, chose {chosen}")
        assert lat["primary"] >= 200 > lat["secondary"]
        assert chosen == ["primary"] + ["secondary"] * 7, (
            "a route never measured is tried once; then the fastest measured wins"
        )


def test_an_rpm_limit_holds_across_the_fleet_and_the_overflow_fails_over(redis_url, tmp_path):
    rpm = 30
    with running_fleet(redis_url, tmp_path, deployments={"primary": {"rpm": rpm}}) as fleet:
        started = time.time()
        results = fleet.run(90)
        elapsed = time.time() - started
        assert all(r.state is JobState.SUCCEEDED for r in results)
        sent = fleet.primary.chat_requests()
        print(f"\nrpm {rpm}, 90 jobs in {elapsed:.1f}s on {FLEET} workers: primary got {sent}")
        assert rpm - 2 <= sent <= rpm + elapsed * rpm / 60 + 1
        assert sum(r.deployment == "secondary" for r in results) == 90 - sent
        passed_over = [a for r in results for a in r.attempts if a.reason == "rate_limited"]
        assert passed_over, "the overflow says why it did not go to the primary"


def test_an_rpm_limited_only_target_makes_jobs_wait_not_fail(redis_url, tmp_path):
    rpm = 60
    with running_fleet(redis_url, tmp_path, deployments={"primary": {"rpm": rpm}}) as fleet:
        policy = {"targets": ["primary"], "deadline_s": 8}
        results = fleet.run(rpm + 5, policy=policy)
        assert all(r.state is JobState.SUCCEEDED for r in results)
        times = arrivals(fleet.primary)
        for count, at in enumerate(times, start=1):
            allowed = rpm + (at - times[0]) * rpm / 60 + 1
            assert count <= allowed, f"{count} calls {at - times[0]:.2f}s in (rpm {rpm})"
        assert times[-1] - times[0] >= 4, "the 5 over the burst waited for refills"
