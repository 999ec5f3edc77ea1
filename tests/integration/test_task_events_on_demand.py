"""A real worker with task events left off (the default) sends none while nobody asks; a
monitor's ``enable_events`` broadcast (what Flower sends every 5 s) turns them on, and they
stop once nobody asked for ``TURNOUT_TASK_EVENTS_IDLE_S``. Events are read off Redis itself:
the PUBLISHes of Celery's event exchange, as Flower's receiver gets them."""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from celery import Celery

from ops.polling import poll_until
from producers.client import Client
from routing.celery_config import create_app
from routing.keys import Keys
from routing.models import JobState
from tests.helpers import eventually
from tests.integration.harness import Sim, Worker, settings_for, stack_env, write_config

IDLE_S = 2.0


class EventTap:
    """Every Celery event published in a namespace, by task id (psubscribe to the event
    exchange's channels, which kombu names under the namespace's key prefix)."""

    def __init__(self, redis_url: str, namespace: str) -> None:
        self._client = redis.Redis.from_url(redis_url)
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        self._pubsub.psubscribe(f"{Keys(namespace).prefix}*celeryev*")
        self.by_task: dict[str, list[str]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            message = self._pubsub.get_message(timeout=0.2)
            if message is None:
                continue
            try:
                envelope = json.loads(message["data"])
                body = envelope["body"]
                if envelope.get("properties", {}).get("body_encoding") == "base64":
                    body = base64.b64decode(body)
                event = json.loads(body)
            except (ValueError, KeyError, TypeError):
                continue  # not an event of Celery's (another test's publish)
            # A worker flushes its buffered task events as one list (routing key task.multi).
            for one in event if isinstance(event, list) else [event]:
                if isinstance(one, dict) and "uuid" in one:
                    self.by_task.setdefault(one["uuid"], []).append(one["type"])

    def types(self, job_id: str) -> list[str]:
        return [str(t) for t in self.by_task.get(job_id, [])]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._pubsub.close()
        self._client.close()


@contextmanager
def stack(
    redis_url: str, namespace: str, tmp_path: Path, heartbeat: bool
) -> Iterator[tuple[Client, Celery, EventTap, Worker]]:
    sim = Sim("only", key=f"sim-{secrets.token_hex(8)}")
    config = write_config(tmp_path / "turnout.yaml", [sim])
    env = stack_env(redis_url, namespace, config, [sim], TURNOUT_TASK_EVENTS_IDLE_S=str(IDLE_S))
    env.pop("TURNOUT_TASK_EVENTS", None)
    worker = Worker(env, tmp_path / "worker.log", heartbeat=heartbeat)
    tap = EventTap(redis_url, namespace)
    settings = settings_for(env)
    client = Client(settings=settings)
    control = create_app(settings)
    try:
        worker.start()
        yield client, control, tap, worker
    finally:
        client.close()
        control.close()
        tap.close()
        worker.stop()
        sim.stop()


def run_one(client: Client, prompt: str) -> str:
    handle = client.submit(prompt)
    assert handle.wait(timeout=30).state is JobState.SUCCEEDED
    return handle.job_id


@pytest.mark.parametrize("heartbeat", [True, False], ids=["heartbeat", "no-heartbeat"])
def test_task_events_only_while_a_monitor_asks(redis_url, namespace, tmp_path, heartbeat):
    with stack(redis_url, namespace, tmp_path, heartbeat) as (client, control, tap, worker):
        unwatched = run_one(client, "nobody watches")
        time.sleep(1.0)  # an event, had one been sent, has long arrived
        assert tap.types(unwatched) == [], "no task event, and no task-sent, by default"

        def watched_job() -> bool:
            control.control.enable_events()  # as Flower does every 5 s
            job_id = run_one(client, "watched")
            return bool(poll_until(lambda: "task-succeeded" in tap.types(job_id), timeout_s=3))

        eventually(watched_job, what="a watched job's task events", timeout=30)
        job_id = run_one(client, "watched again")
        expected = {"task-received", "task-started", "task-calling", "task-succeeded"}
        eventually(lambda: expected <= set(tap.types(job_id)), what=str(expected), timeout=5)

        # Nobody asks any more: a little past the idle time (and the timer's quarter), off.
        def silent_job() -> bool:
            job_id = run_one(client, "left alone")
            time.sleep(1.0)
            return tap.types(job_id) == []

        time.sleep(IDLE_S)
        eventually(silent_job, what="task events to stop", timeout=15)
        assert "sending them stops" in worker.log()
