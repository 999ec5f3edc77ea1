"""The task events switch (workers.event_switch) on Celery's real event dispatcher, over kombu's
in-memory transport: on while a monitor asks, off once it stopped asking for ``idle_s``."""

from __future__ import annotations

from typing import Any

import pytest
from celery import Celery
from kombu.connection import Connection

from workers.event_switch import TASK_GROUP, EventSwitch


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def app() -> Celery:
    return Celery("switch-test", broker="memory://")


def dispatcher(app: Celery, *, enabled: bool, groups: list[str] | None) -> Any:
    """As Celery's Events bootstep makes it: ``groups`` ['worker'] when task events are off,
    None (no filter) when on."""
    return app.events.Dispatcher(
        Connection("memory://"), hostname="w@test", enabled=enabled, groups=groups
    )


def sends(d: Any, event_type: str) -> bool:
    """Whether ``d`` would publish an event of this type (its own filter, as ``send`` applies
    it)."""
    return bool(d.enabled and (not d.groups or event_type.split("-")[0] in d.groups))


def test_a_monitors_ask_turns_task_events_on_and_silence_turns_them_off(app):
    clock = Clock()
    switch = EventSwitch(idle_s=60, clock=clock)
    d = dispatcher(app, enabled=True, groups=["worker"])
    assert not sends(d, "task-started")
    assert sends(d, "worker-heartbeat")

    d.groups.add(TASK_GROUP)  # what Celery's enable_events does
    switch.asked()
    assert sends(d, "task-started")
    clock.now += 59
    assert not switch.check(d), "still watched"
    switch.asked()  # Flower asks again every 5 s
    clock.now += 59
    assert not switch.check(d)
    clock.now += 2
    assert switch.check(d)
    assert not sends(d, "task-started")
    assert sends(d, "worker-heartbeat"), "heartbeats go on"
    assert not switch.check(d), "nothing left to turn off"


def test_a_worker_started_with_task_events_on_is_never_turned_off(app):
    clock = Clock()
    switch = EventSwitch(idle_s=1, clock=clock)
    d = dispatcher(app, enabled=True, groups=None)
    clock.now += 1000
    assert not switch.check(d)
    assert sends(d, "task-succeeded")


def test_an_ask_never_seen_is_as_old_as_can_be(app):
    """Task events turned on before the switch heard an ask (a remote command it did not see)
    go off at the first check."""
    switch = EventSwitch(idle_s=60, clock=Clock())
    d = dispatcher(app, enabled=True, groups=["worker", TASK_GROUP])
    assert switch.check(d)
    assert d.groups == {"worker"}
