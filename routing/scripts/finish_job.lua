-- finish_job: record a job's outcome unless it already finished (the first finisher wins), or
-- another run holds the job now (fencing).
--
-- KEYS[1] job hash, KEYS[2] attempt list, KEYS[3] due index, KEYS[4] job counts (also the base
--   of the per-day counts, <KEYS[4]>:<day>, derived from Redis TIME)
-- ARGV[1] final state, ARGV[2] outcome json, ARGV[3] ttl seconds, ARGV[4] done channel,
--   ARGV[5] job id, ARGV[6] the finishing run's lease token ('': a job this worker could not
--   claim, the exhausted poison case), ARGV[7..] attempts to append (they happened, whoever wins)
-- Reply: {1} recorded | {0, state} the job had already finished (a duplicate run)
--   | {-1} no record | {-2} fenced: another run took the job over (our lease expired while we
--   were cut off, and it claimed it), or with no token a live lease is held by someone else
-- The token is the fence: a worker cut off from Redis past its lease comes back to a job another
-- worker claimed (a new token) and perhaps finished; its finish changes nothing but the attempt
-- log. A lease that lapsed with nobody taking over still carries our token: that finish counts.
-- The day's hash gets its expiry with its first count of a state (HINCRBY replied 1), not with
-- every finish: a day's hash is written during that day only.
-- Prepend: _clock.lua
local job = redis.call('HMGET', KEYS[1], 'state', 'lease_token', 'lease_until')
local state = job[1]
if not state then
  redis.call('ZREM', KEYS[3], ARGV[5])
  return {-1}
end
if #ARGV >= 7 then
  redis.call('RPUSH', KEYS[2], unpack(ARGV, 7))
  redis.call('EXPIRE', KEYS[2], ARGV[3])
end
if state == 'succeeded' or state == 'failed' then
  redis.call('ZREM', KEYS[3], ARGV[5])
  return {0, state}
end
if ARGV[6] ~= '' then
  if state ~= 'running' or job[2] ~= ARGV[6] then return {-2} end
elseif state == 'running' and tonumber(job[3] or '0') > now then
  return {-2}
end
redis.call('ZREM', KEYS[3], ARGV[5])
redis.call('HINCRBY', KEYS[4], state, -1)
local today = bucket_key(KEYS[4], DAY_MS)
if redis.call('HINCRBY', today, ARGV[1], 1) == 1 then
  redis.call('PEXPIRE', today, 3 * DAY_MS)
end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'outcome', ARGV[2], 'finished_at', now,
           'updated_at', now)
redis.call('HDEL', KEYS[1], 'lease_token', 'lease_until', 'waiting')
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[1])
return {1}
