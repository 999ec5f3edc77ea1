-- record_health: a health check's result, and the route's health it makes (what acquire_route
-- reads to put failing routes last).
--
-- KEYS[1] the route's breaker hash (fields health: 'ok' | 'failing', health_fails),
--   KEYS[2] the route's last check (RouteKeys.health)
-- ARGV[1] ok (1|0), ARGV[2] latency ms, ARGV[3] error class ('' when ok), ARGV[4] detail,
--   ARGV[5] probe (1: it was the half-open probe), ARGV[6] failed checks in a row that make the
--   route 'failing'
-- Reply: {health ('ok' | 'failing'), failed checks in a row, changed (1 when health flipped)}
-- Prepend: _clock.lua
local key = KEYS[1]
local ok = ARGV[1] == '1'
local before = redis.call('HGET', key, 'health') or 'ok'
local fails = 0
local health = 'ok'
if not ok then
  fails = redis.call('HINCRBY', key, 'health_fails', 1)
  if fails >= tonumber(ARGV[6]) then health = 'failing' else health = before end
end
redis.call('HSET', key, 'health', health, 'health_fails', fails)
redis.call('HSET', KEYS[2], 'ok', ARGV[1], 'latency_ms', ARGV[2],
           'error_class', ARGV[3], 'detail', ARGV[4], 'checked_at', now, 'probe', ARGV[5])
local changed = 0
if health ~= before then changed = 1 end
return {health, fails, changed}
