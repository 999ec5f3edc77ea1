-- announce_worker: a worker says it is alive, by Redis's clock (turnout status lists the
-- workers seen lately), and forgets the workers silent for long.
--
-- KEYS (Keys): KEYS[1] workers (sorted set: worker id scored by when last seen, Redis ms),
--   KEYS[2] worker_info (hash: worker id -> JSON of hostname, pid, concurrency)
-- ARGV[1] worker id, ARGV[2] its JSON, ARGV[3] how long (ms) a silent worker is remembered
-- Reply: how many workers are remembered
-- Prepend: _clock.lua
local workers, info = KEYS[1], KEYS[2]
redis.call('ZADD', workers, now, ARGV[1])
redis.call('HSET', info, ARGV[1], ARGV[2])
local gone = redis.call('ZRANGEBYSCORE', workers, '-inf', now - tonumber(ARGV[3]))
for _, id in ipairs(gone) do
  redis.call('ZREM', workers, id)
  redis.call('HDEL', info, id)
end
return redis.call('ZCARD', workers)
