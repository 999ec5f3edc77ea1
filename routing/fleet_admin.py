"""Operators' hands on the fleet's breakers: ``turnout breaker open|close|reset ID``.

``open`` keeps a route out of rotation (for ``--for`` seconds, then probes decide as usual; with
``failback: manual`` until someone closes it); ``close`` puts it back at once (its next success
is the failback); ``reset`` forgets its breaker state (not its statistics). Each is one Lua
call on Redis's clock, like every other transition, so it cannot interleave with a worker's.
"""

from __future__ import annotations

from typing import Literal

import redis

from routing.breaker import BreakerStateName
from routing.fleet_scripts import REDIS_NOW
from routing.redis_text import as_text
from routing.routes import Transition, TransitionChange

Action = Literal["open", "close", "reset"]

# ARGV[1] key prefix, ARGV[2] route id, ARGV[3] action, ARGV[4] ms an 'open' lasts
# -> the state before
ADMIN_BREAKER = (
    REDIS_NOW
    + """
local key = ARGV[1] .. ARGV[2]
local before = redis.call('HGET', key, 'state') or 'closed'
local action = ARGV[3]
if action == 'open' then
  redis.call('HSET', key, 'state', 'open', 'open_until', now + tonumber(ARGV[4]),
             'reason', 'opened by an operator', 'opened_at', now, 'changed_at', now,
             'consecutive', 0, 'probe_ok', 0, 'failback', 0)
elseif action == 'close' then
  redis.call('HSET', key, 'state', 'closed', 'closed_at', now, 'reason', '', 'changed_at', now,
             'consecutive', 0, 'probe_ok', 0, 'failback', 1, 'cool_until', 0)
else
  redis.call('HDEL', key, 'state', 'open_until', 'reopens', 'closed_at', 'consecutive', 'reason',
             'opened_at', 'changed_at', 'probe_ok', 'failback', 'cool_until')
end
redis.call('DEL', key .. ':probes', key .. ':window')
return before
"""
)

_CHANGES: dict[str, tuple[TransitionChange, BreakerStateName]] = {
    "open": ("forced_open", "open"),
    "close": ("forced_closed", "closed"),
}


def operate_breaker(
    client: redis.Redis, prefix: str, route_id: str, action: Action, *, open_for_s: float = 3600
) -> Transition:
    """Apply an operator's action; returns it as a transition (for the log and the alert)."""
    before = client.eval(ADMIN_BREAKER, 0, prefix, route_id, action, int(open_for_s * 1000))
    was = as_text(before)
    change, state = _CHANGES.get(action, ("reset", "closed"))
    return Transition(route_id, change, state, f"by an operator (was {was})")
