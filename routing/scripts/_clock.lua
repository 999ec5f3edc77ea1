-- _clock: Redis's clock, the one every script reads (never a worker's, which may be off by
-- seconds). routing.redis_scripts prepends this file to each script whose header says
-- "Prepend: _clock.lua".
--
-- Defines:
--   now                      Redis TIME, ms since the epoch
--   MINUTE_MS, DAY_MS        the widths of the statistics' time buckets
--   bucket_key(base, width)  the key of the bucket `width` ms wide that holds now:
--                            base .. ':' .. floor(now / width). routing.keys.bucket_key spells
--                            the same for readers, who take the bucket number from Redis TIME.
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local MINUTE_MS, DAY_MS = 60000, 86400000
local function bucket_key(base, width)
  return base .. ':' .. math.floor(now / width)
end
