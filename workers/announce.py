"""Breaker transitions, wherever they are seen (a worker's call, beat's health check, an operator
at the CLI), announced the same way: a log line on ``turnout.breaker`` and an alert
(workers.alerts). Each transition is computed by one Lua call, so the fleet announces it once.
"""

from __future__ import annotations

import logging

from routing.config import TurnoutConfig
from routing.routes import Transition
from workers.alerts import AlertSink, BreakerEvent, EventName

log = logging.getLogger("turnout.breaker")


def event_of(transition: Transition, config: TurnoutConfig, source: str) -> BreakerEvent | None:
    """The alert a transition makes; None for a Retry-After cooling a route (routine, not news).
    An opening for a rejected credential is ``credential_invalid``: someone must fix a key."""
    change = transition.change
    if change == "cooled":
        return None
    name: EventName = change
    if name == "opened" and transition.reason == "credential rejected":
        name = "credential_invalid"
    deployment_id = transition.route_id.split("/", 1)[0]
    deployment = config.deployments.get(deployment_id)
    return BreakerEvent(
        event=name,
        route_id=transition.route_id,
        deployment=deployment_id,
        provider=deployment.provider if deployment else None,
        reason=transition.reason,
        state=transition.state,
        source=source,
    )


class Announcer:
    """Turns transitions into log lines and alerts, for one process."""

    def __init__(self, sink: AlertSink, config: TurnoutConfig, source: str) -> None:
        self.sink = sink
        self.config = config
        self.source = source

    def __call__(self, transition: Transition) -> None:
        event = event_of(transition, self.config, self.source)
        if event is None:
            log.info(
                "breaker %s: %s (%s)", transition.route_id, transition.change, transition.reason
            )
            return
        self.sink.emit(event)
