"""Failover, then failback, with real workers, real beat processes, simulators and a webhook
receiver, all on 127.0.0.1. Cool-downs and check intervals are shortened through the config."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from producers.client import Client, JobHandle
from routing.keys import Keys
from routing.models import JobState
from tests.helpers import WebhookReceiver, eventually
from tests.integration.harness import Beat, Sim, Worker, settings_for, stack_env, write_config

BREAKER = {"consecutive_failures": 3, "cooldown_s": 2, "cooldown_jitter": 0, "close_after": 2}
HEALTH = {"every_s": 1, "failing_after": 2, "timeout_s": 2}


@contextmanager
def stack(
    redis_url: str, namespace: str, directory: Path, *, beats: int, **extra_env: str
) -> Iterator[tuple[Sim, Sim, dict[str, str], list[Beat]]]:
    primary = Sim("primary", key="sim-primary-key-failback")
    secondary = Sim("secondary", key="sim-secondary-key-failback")
    config = write_config(
        directory / "turnout.yaml",
        [primary, secondary],
        policy={"retries_per_target": 0},
        breaker=BREAKER,
        health=HEALTH,
    )
    env = stack_env(
        redis_url,
        namespace,
        config,
        [primary, secondary],
        TURNOUT_HEALTH_TICK="0.25",
        **extra_env,
    )
    worker = Worker(env, directory / "worker.log", concurrency=4)
    started = []
    try:
        worker.start()
        for n in range(beats):
            beat_dir = directory / f"beat-{n}"
            beat_dir.mkdir()
            started.append(Beat(env, beat_dir).start())
        yield primary, secondary, env, started
    finally:
        for beat in started:
            beat.stop()
        worker.stop()
        primary.stop()
        secondary.stop()


def breaker_state(client: redis.Redis, namespace: str, route: str) -> str:
    state = client.hget(Keys(namespace).route(route).breaker, "state")
    return state.decode() if isinstance(state, bytes) else (state or "closed")


def test_a_dead_primary_fails_over_then_wins_its_traffic_back(redis_url, namespace, tmp_path):
    with (
        WebhookReceiver() as hook,
        stack(redis_url, namespace, tmp_path, beats=1, TURNOUT_ALERT_WEBHOOK=hook.url) as (
            primary,
            _,
            env,
            _,
        ),
        redis.Redis.from_url(redis_url) as client,
        Client(settings=settings_for(env)) as producer,
    ):
        primary.set_faults(down=True)
        handles: list[JobHandle] = []

        def opened() -> bool:
            if breaker_state(client, namespace, "primary") == "open":
                return True
            handles.append(producer.submit("during the outage"))
            return False

        eventually(opened, timeout=30, interval=0.1, what="the breaker to open")
        during = [h.wait(timeout=60) for h in handles]
        assert {(r.state, r.deployment) for r in during} == {(JobState.SUCCEEDED, "secondary")}

        primary.set_faults(down=False)
        recovered_at = time.monotonic()

        def served_by_primary() -> float | None:
            result = producer.complete("after the recovery", timeout=60)
            return time.monotonic() - recovered_at if result.deployment == "primary" else None

        served_again = eventually(
            served_by_primary, timeout=30, interval=0.1, what="the primary to get its traffic back"
        )
        # A job may be the half-open probe that serves first; the breaker closes after
        # close_after good probes in a row (beat's checks, jobs or both).
        eventually(
            lambda: breaker_state(client, namespace, "primary") == "closed",
            timeout=recovered_at + 30 - time.monotonic(),
            what="the breaker to close",
        )
        closed_after = time.monotonic() - recovered_at
        print(
            f"\nfailback: the primary served a job again {served_again:.1f}s after it recovered, "
            f"its breaker closed after {closed_after:.1f}s (cool-down {BREAKER['cooldown_s']}s, "
            f"checks every {HEALTH['every_s']}s, {BREAKER['close_after']} good probes to close)"
        )
        after = [producer.complete("back to normal", timeout=60) for _ in range(5)]
        assert {r.deployment for r in after} == {"primary"}, "traffic is back on the primary"
        health = Keys(namespace).route("primary").health
        eventually(
            lambda: client.hget(health, "ok") == b"1",
            timeout=10,
            interval=0.1,
            what="beat to check the recovered primary",
        )

        eventually(
            lambda: "closed" in hook.events("primary"),
            timeout=10,
            interval=0.1,
            what="a close event",
        )
        events = hook.events("primary")
        assert events[0] == "opened", events
        assert "closed" in events
        assert all(e["text"] and "primary" in e["text"] for e in hook.bodies)


def test_two_beats_check_each_deployment_once_per_interval(redis_url, namespace, tmp_path):
    with stack(redis_url, namespace, tmp_path, beats=2) as (primary, secondary, _, _):
        time.sleep(1.5)  # both beats up and ticking
        before = (primary.stats()["probe_requests"], secondary.stats()["probe_requests"])
        started = time.monotonic()
        time.sleep(5)
        elapsed = time.monotonic() - started
        after = (primary.stats()["probe_requests"], secondary.stats()["probe_requests"])
    checks = [a - b for a, b in zip(after, before, strict=True)]
    print(f"\ntwo beats, {elapsed:.1f}s, checks every {HEALTH['every_s']}s: {checks}")
    for count in checks:
        assert elapsed / HEALTH["every_s"] - 2 <= count <= elapsed / HEALTH["every_s"] + 1


def test_health_checks_run_while_a_backlog_of_jobs_waits(redis_url, namespace, tmp_path):
    with (
        stack(redis_url, namespace, tmp_path, beats=1) as (primary, secondary, env, _),
        redis.Redis.from_url(redis_url) as client,
        Client(settings=settings_for(env)) as producer,
    ):
        primary.set_faults(latency_ms=500)  # 4 worker threads: 8 jobs a second
        handles = [producer.submit(f"backlog {n}") for n in range(60)]
        queue = Keys(namespace).queue_list(Keys(namespace).queue)
        time.sleep(1)  # the backlog is in and beat's ticks land behind it
        before = secondary.stats()["probe_requests"]
        time.sleep(3)
        waiting = client.llen(queue)
        checks = secondary.stats()["probe_requests"] - before
        results = [h.wait(timeout=60) for h in handles]
    print(f"\n{checks} checks of the secondary in 3 s while {waiting} job messages waited")
    assert waiting > 10, "the backlog was still there"
    assert checks >= 2, "beat's checks do not wait behind the jobs"
    assert {r.state for r in results} == {JobState.SUCCEEDED}
