"""The health checks' two Lua scripts, on the route keys of routing.fleet_scripts.

Per route (``<prefix><route id>``):
    hash            health ('ok' | 'failing': what ACQUIRE_ROUTE reads), health_fails
    :health  hash   the last check: ok, latency_ms, error_class, detail, checked_at, probe
    :hc:<slot>      the lock of one interval's check (slot = Redis time // every)
"""

from __future__ import annotations

from routing.fleet_scripts import REDIS_NOW

# ARGV[1] key prefix, then 2 values per route: id, every ms
# -> the 1-based indexes of the routes this caller is to check now: the first to ask in each
#    route's interval, fleet-wide. Two beats, or a beat restarted mid-interval, check once.
CLAIM_HEALTH_CHECKS = (
    REDIS_NOW
    + """
local claimed = {}
for i = 2, #ARGV, 2 do
  local every = tonumber(ARGV[i + 1])
  local slot = math.floor(now / every)
  local lock = ARGV[1] .. ARGV[i] .. ':hc:' .. slot
  if redis.call('SET', lock, '1', 'NX', 'PX', every * 2) then
    claimed[#claimed + 1] = i / 2
  end
end
return claimed
"""
)

# ARGV[1] key prefix, ARGV[2] route id, ARGV[3] ok (1|0), ARGV[4] latency ms,
# ARGV[5] error class ('' when ok), ARGV[6] detail, ARGV[7] probe (1: it was the half-open
# probe), ARGV[8] failed checks in a row that make the route 'failing'
# -> {health ('ok' | 'failing'), failed checks in a row, changed (1 when health flipped)}
RECORD_HEALTH = (
    REDIS_NOW
    + """
local key = ARGV[1] .. ARGV[2]
local ok = ARGV[3] == '1'
local before = redis.call('HGET', key, 'health') or 'ok'
local fails = 0
local health = 'ok'
if not ok then
  fails = redis.call('HINCRBY', key, 'health_fails', 1)
  if fails >= tonumber(ARGV[8]) then health = 'failing' else health = before end
end
redis.call('HSET', key, 'health', health, 'health_fails', fails)
redis.call('HSET', key .. ':health', 'ok', ARGV[3], 'latency_ms', ARGV[4],
           'error_class', ARGV[5], 'detail', ARGV[6], 'checked_at', now, 'probe', ARGV[7])
local changed = 0
if health ~= before then changed = 1 end
return {health, fails, changed}
"""
)
