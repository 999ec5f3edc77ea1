-- reclaim_consumers: a live consumer beats, and puts back what dead consumers held.
--
-- KEYS[1] the consumers sorted set (Keys.consumers), KEYS[2] what each consumer's keys start
--   with (Keys.consumer_prefix), KEYS[3..] the queue lists. A dead consumer's keys are spelt
--   here, once its id is read from KEYS[1]: KEYS[2] .. id .. ':popped:' .. <queue list> and
--   KEYS[2] .. id .. ':held' (Keys.consumer_popped, consumer_held; undeclared keys: fine on one
--   Redis, not on a Cluster)
-- ARGV[1] this consumer's id, ARGV[2] ms of silence after which a consumer is dead
-- Reply: {dead ids..., '', moved count, held tags...}: the consumers found dead (taken off the
--   set), how many popped messages went back to their queues, and the delivery tags the dead
--   held in kombu's unacked hash (the caller restores each with kombu's restore_by_tag, which
--   knows the bindings; should the caller die first, kombu's visibility-timeout sweep still has
--   them, so a double failure is slow, never a loss)
-- A caller whose own last beat is missing or older than ARGV[2] was cut off too (Redis was
-- away, or restarted from older data, or this process stalled): it cannot tell the dead from
-- those silenced with it, so it only beats this time and judges at its next beat, when every
-- live consumer has had a beat's time to say so. Else, after any outage longer than ARGV[2],
-- the first consumer back would put back every in-flight message of the fleet.
-- Prepend: _clock.lua
local previous = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]) or '-1')
redis.call('ZADD', KEYS[1], now, ARGV[1])
if previous < 0 or now - previous > tonumber(ARGV[2]) then return {'', 0} end
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]), 'LIMIT', 0, 20)
local reply, tags, moved = {}, {}, 0
for _, id in ipairs(dead) do
  reply[#reply + 1] = id
  for q = 3, #KEYS do
    local popped = KEYS[2] .. id .. ':popped:' .. KEYS[q]
    -- to the consuming end of their queue: they are the next out, as they were when popped
    while redis.call('LMOVE', popped, KEYS[q], 'RIGHT', 'RIGHT') do moved = moved + 1 end
  end
  local held = KEYS[2] .. id .. ':held'
  for _, tag in ipairs(redis.call('SMEMBERS', held)) do tags[#tags + 1] = tag end
  redis.call('DEL', held)
  redis.call('ZREM', KEYS[1], id)
end
reply[#reply + 1] = ''
reply[#reply + 1] = moved
for _, tag in ipairs(tags) do reply[#reply + 1] = tag end
return reply
