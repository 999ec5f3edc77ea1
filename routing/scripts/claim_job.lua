-- claim_job: take a job's lease for one run, unless it finished, another live lease holds it,
-- or it ran out of runs.
--
-- KEYS[1] job hash, KEYS[2] due index, KEYS[3] job counts
-- ARGV[1] lease token, ARGV[2] lease ms, ARGV[3] max runs, ARGV[4] job id
-- Reply: {'claimed', request, policy, runs, deadline remaining ms, spent budget json ('' none)}
--   | {'missing'} | {'finished', state} | {'leased', remaining_ms} | {'exhausted', lost runs}
-- 'runs' counts deliveries (this claim is delivery number runs); a job is exhausted (a poison
-- job) after max runs that ended with neither a finish nor a release: runs - reschedules, the
-- runs a worker died in (release_job counts reschedules).
-- The job's deadline is fixed at its first claim (deadline_at): a job rescheduled because every
-- target was unavailable runs on with what is left of it, so rescheduling never extends it. A job
-- taken over from a dead worker (still 'running', its lease expired) gets a fresh deadline: the
-- lost run's time was nobody's choice, and each run still fits in the visibility timeout.
-- A claimed job no longer waits: its 'waiting' field (release_job) goes.
-- A claim tried again with the token of the lease it already took (its reply was lost when
-- Redis went away) gets the same claim back, its run not counted twice.
-- Prepend: _clock.lua
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing'} end
if state == 'succeeded' or state == 'failed' then return {'finished', state} end
if state == 'running' then
  local lease = redis.call('HMGET', KEYS[1], 'lease_until', 'lease_token', 'runs')
  local lease_until = tonumber(lease[1] or '0')
  if lease[2] == ARGV[1] and lease_until > now then
    local mine = redis.call('HMGET', KEYS[1], 'request', 'policy', 'deadline_at', 'budget')
    return {'claimed', mine[1], mine[2], tonumber(lease[3] or '0'),
            tonumber(mine[3] or '0') - now, mine[4] or ''}
  end
  if lease_until > now then return {'leased', lease_until - now} end
end
local taken_over = state == 'running'
local counted = redis.call('HMGET', KEYS[1], 'runs', 'reschedules')
local lost = tonumber(counted[1] or '0') - tonumber(counted[2] or '0')
if lost >= tonumber(ARGV[3]) then return {'exhausted', lost} end
local runs = redis.call('HINCRBY', KEYS[1], 'runs', 1)
if not taken_over then
  redis.call('HINCRBY', KEYS[3], 'queued', -1)
  redis.call('HINCRBY', KEYS[3], 'running', 1)
end
local lease_until = now + tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'state', 'running', 'lease_token', ARGV[1],
           'lease_until', lease_until, 'started_at', now, 'updated_at', now)
redis.call('HDEL', KEYS[1], 'waiting')
redis.call('ZADD', KEYS[2], lease_until, ARGV[4])
local job = redis.call('HMGET', KEYS[1], 'request', 'policy', 'deadline_at', 'deadline_ms',
                      'budget')
local deadline_at = tonumber(job[3] or '0')
if deadline_at == 0 or taken_over then
  deadline_at = now + tonumber(job[4] or '0')
  redis.call('HSET', KEYS[1], 'deadline_at', deadline_at)
end
return {'claimed', job[1], job[2], runs, deadline_at - now, job[5] or ''}
