"""Operators' hands on the fleet's breakers: ``turnout breaker open|close|reset ID``.

``open`` keeps a route out of rotation (for ``--for`` seconds, then probes decide as usual; with
``failback: manual`` until someone closes it); ``close`` puts it back at once (its next success
is the failback); ``reset`` forgets its breaker state (not its statistics). Each is one Lua
call (admin_breaker.lua) on Redis's clock, like every other transition, so it cannot interleave
with a worker's.
"""

from __future__ import annotations

from typing import Literal

import redis

from routing.breaker import BreakerStateName
from routing.keys import RouteKeys
from routing.redis_scripts import source
from routing.redis_text import as_text
from routing.routes import Transition, TransitionChange

Action = Literal["open", "close", "reset"]

_CHANGES: dict[str, tuple[TransitionChange, BreakerStateName]] = {
    "open": ("forced_open", "open"),
    "close": ("forced_closed", "closed"),
}


def operate_breaker(
    client: redis.Redis, prefix: str, route_id: str, action: Action, *, open_for_s: float = 3600
) -> Transition:
    """Apply an operator's action; returns it as a transition (for the log and the alert)."""
    route_keys = RouteKeys.under(prefix, route_id)
    before = client.register_script(source("admin_breaker"))(
        keys=[route_keys.breaker, route_keys.probes, route_keys.window],
        args=[action, int(open_for_s * 1000)],
    )
    was = as_text(before)
    change, state = _CHANGES.get(action, ("reset", "closed"))
    return Transition(route_id, change, state, f"by an operator (was {was})")
