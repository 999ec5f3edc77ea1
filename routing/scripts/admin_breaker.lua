-- admin_breaker: an operator's action on a route's breaker (turnout breaker open|close|reset).
--
-- KEYS[1] the route's breaker hash, KEYS[2] its probes, KEYS[3] its window
-- ARGV[1] action: 'open' | 'close' | 'reset', ARGV[2] ms an 'open' lasts
-- Reply: the state before
-- Prepend: _clock.lua
local key = KEYS[1]
local before = redis.call('HGET', key, 'state') or 'closed'
local action = ARGV[1]
if action == 'open' then
  redis.call('HSET', key, 'state', 'open', 'open_until', now + tonumber(ARGV[2]),
             'reason', 'opened by an operator', 'opened_at', now, 'changed_at', now,
             'consecutive', 0, 'probe_ok', 0, 'failback', 0, 'unreachable', '')
elseif action == 'close' then
  redis.call('HSET', key, 'state', 'closed', 'closed_at', now, 'reason', '', 'changed_at', now,
             'consecutive', 0, 'probe_ok', 0, 'failback', 1, 'cool_until', 0,
             'unreachable', '')
else
  redis.call('HDEL', key, 'state', 'open_until', 'reopens', 'closed_at', 'consecutive', 'reason',
             'opened_at', 'changed_at', 'probe_ok', 'failback', 'cool_until', 'unreachable')
end
redis.call('DEL', KEYS[2], KEYS[3])
return before
