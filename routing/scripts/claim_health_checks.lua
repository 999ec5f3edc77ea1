-- claim_health_checks: which routes this caller is to check now: the first to ask in each
-- route's interval, fleet-wide. Two beats, or a beat restarted mid-interval, check once.
--
-- KEYS: 1 per route, the base of its health-check locks (RouteKeys.health_check_locks): the
--   lock of one interval is <base>:<slot>, slot = Redis TIME // the interval, derived here
-- ARGV: 1 per route, in the order of KEYS: its interval in ms
-- Reply: the 1-based indexes of the routes this caller is to check now
-- Prepend: _clock.lua
local claimed = {}
for i = 1, #KEYS do
  local every = tonumber(ARGV[i])
  local lock = bucket_key(KEYS[i], every)
  if redis.call('SET', lock, '1', 'NX', 'PX', every * 2) then
    claimed[#claimed + 1] = i
  end
end
return claimed
