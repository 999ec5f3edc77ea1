"""Task events only while a monitor watches.

Task events (what Flower shows) are a Redis PUBLISH per state change that nothing stores; sent
for every job, they add about 1.5 ms to each job's submit-to-result time and a tenth of a
loaded worker's CPU, watched or not. So a worker starts with them off (``TURNOUT_TASK_EVENTS``
unset) and sends them only while a monitor asks for them:

* a monitor asks with Celery's ``enable_events`` remote control command: Flower broadcasts it
  every 5 s while it runs (``flower.events.Events.events_enable_interval``), and so does
  ``celery events``; the worker's own command turns its ``task`` event group on;
* this module wraps that command to note when it was last asked, and a timer turns the group
  off again once no monitor has asked for ``TURNOUT_TASK_EVENTS_IDLE_S`` (60 s: twelve of
  Flower's broadcasts missed, so a Flower that is only slow keeps its events).

The dispatcher is kept on (filtering out the ``task`` group) even in a worker started without
heartbeat and gossip, which Celery would give a dispatcher that is off for good: Celery decides
at start whether a worker's requests ever send ``task-received`` and ``task-succeeded``, and a
dispatcher off then would leave a monitor with half of each job's events.

A worker started with task events on (``TURNOUT_TASK_EVENTS=1`` or ``-E``) sends every event
and is never switched off: its dispatcher filters no group at all, which the timer leaves be.
Celery's ``disable_events`` still turns events off at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from celery import bootsteps
from celery.worker.consumer.events import Events
from celery.worker.control import Panel

log = logging.getLogger("turnout.events")

TASK_GROUP = "task"


class EventSwitch:
    """When a monitor last asked for task events, and whether it is time to stop sending them.

    Pure but for the dispatcher it is handed: ``check`` is what the worker's timer calls."""

    def __init__(self, idle_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_s = idle_s
        self._clock = clock
        self._lock = threading.Lock()
        self._asked_at: float | None = None

    def asked(self) -> None:
        with self._lock:
            self._asked_at = self._clock()

    def check(self, dispatcher: Any) -> bool:
        """Turn ``dispatcher``'s task events off when they were switched on by a monitor that
        has not asked for ``idle_s``. True when it turned them off."""
        groups = getattr(dispatcher, "groups", None)
        # An empty set filters nothing: the worker was started with task events on.
        if not groups or TASK_GROUP not in groups:
            return False
        with self._lock:
            asked_at = self._asked_at
            if asked_at is not None and self._clock() - asked_at < self.idle_s:
                return False
            self._asked_at = None
        groups.discard(TASK_GROUP)  # its worker group (heartbeats, if any) goes on
        log.info("no monitor asked for task events for %gs: sending them stops", self.idle_s)
        return True


#: The worker process's switch, once ``install`` ran.
_switch: EventSwitch | None = None


def install(idle_s: float) -> EventSwitch:
    """Wrap the worker's ``enable_events`` remote control command so each ask is noted. Once
    per process: the command table is Celery's, process-wide."""
    global _switch
    if _switch is not None:
        _switch.idle_s = idle_s
        return _switch
    switch = _switch = EventSwitch(idle_s)
    enable = Panel.data["enable_events"]

    def enable_events(state: Any) -> Any:
        switch.asked()
        return enable(state)

    enable_events.__doc__ = enable.__doc__
    # The command's metadata (Panel.meta) stays Celery's; only the function it runs changes.
    Panel.data["enable_events"] = enable_events
    return switch


def current() -> EventSwitch | None:
    return _switch


def start_timer(consumer: Any, switch: EventSwitch) -> Any:
    """Check the switch on the worker's timer, a few times per idle period. Returns the timer
    entry (``cancel()`` stops it)."""

    def check() -> None:
        try:
            switch.check(consumer.event_dispatcher)
        except Exception as exc:  # a monitoring aid never takes the worker down
            log.debug("task events switch check failed: %s", exc)

    return consumer.timer.call_repeatedly(max(switch.idle_s / 4, 0.5), check)


class EventsOnDemand(bootsteps.StartStopStep):  # type: ignore[misc]
    """The consumer step (``app.steps["consumer"]``) that keeps the event dispatcher on for
    ``enable_events`` to switch, notes each ask, and checks the switch on the worker's timer."""

    requires = (Events,)

    def __init__(self, c: Any, **kwargs: Any) -> None:
        super().__init__(c, **kwargs)
        events = c.blueprint.steps.get(Events.name)
        if events is not None and not events.send_events:
            # Off only because heartbeat and gossip are: on, with the ``worker`` group only
            # (Events already filters so without task events), so nothing more is published.
            events.send_events = events.enabled = True
            events.groups = ["worker"]
        self.switch = install(c.app.conf.get("turnout_task_events_idle_s", 60.0))
        self._timer: Any = None

    def start(self, c: Any) -> None:
        # Started again after each broker reconnect: one timer at a time.
        self.stop(c)
        self._timer = start_timer(c, self.switch)

    def stop(self, c: Any) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
