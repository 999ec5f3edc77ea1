-- release_job: give a running job back to the queue for later, saying what it waits for.
--
-- KEYS[1] job hash, KEYS[2] due index, KEYS[3] job counts, KEYS[4] attempt list
-- ARGV[1] lease token, ARGV[2] job id, ARGV[3] delay ms, ARGV[4] waiting json ('' none),
--   ARGV[5] ttl seconds of the attempt list, ARGV[6] spent budget json ('' none),
--   ARGV[7..] attempts to append
-- Reply: 1 released | 0 not ours (finished, or re-claimed after our lease expired)
-- A job every route refuses for now goes back to the queue, its worker slot freed, and the
-- reconciler looks at it once the delay is over. 'runs' counts deliveries and is left alone (an
-- attempt's run is the delivery it was); 'reschedules' counts this, so claim_job tells runs a
-- worker died in (runs - reschedules) from runs that were given back. 'budget'
-- (routing.models.SpentBudget) carries what the runs spent of the job's retries to the next.
-- Its 'waiting' field (routing.models.Waiting) stays until the next claim or the finish removes
-- it. The run's attempts happened whoever holds the job now: they are appended in any case.
-- Prepend: _clock.lua
if #ARGV >= 7 then
  for i = 7, #ARGV do redis.call('RPUSH', KEYS[4], ARGV[i]) end
  redis.call('EXPIRE', KEYS[4], ARGV[5])
end
local job = redis.call('HMGET', KEYS[1], 'state', 'lease_token')
if job[1] ~= 'running' or job[2] ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', 'queued', 'updated_at', now)
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'waiting', ARGV[4]) end
if ARGV[6] ~= '' then redis.call('HSET', KEYS[1], 'budget', ARGV[6]) end
redis.call('HINCRBY', KEYS[3], 'running', -1)
redis.call('HINCRBY', KEYS[3], 'queued', 1)
redis.call('HDEL', KEYS[1], 'lease_token', 'lease_until')
redis.call('HINCRBY', KEYS[1], 'reschedules', 1)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]) * 2 + 1000, ARGV[2])
return 1
