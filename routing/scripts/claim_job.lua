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
-- Redis went away) gets the same claim back, its run not counted twice, its lease renewed if
-- it ran out meanwhile.
-- Prepend: _clock.lua
-- One HMGET reads all the claim needs, one HSET writes it.
local job = redis.call('HMGET', KEYS[1], 'state', 'lease_until', 'lease_token', 'runs',
                       'reschedules', 'request', 'policy', 'deadline_at', 'deadline_ms',
                       'budget', 'waiting')
local state = job[1]
if not state then return {'missing'} end
if state == 'succeeded' or state == 'failed' then return {'finished', state} end
local runs, deadline_at = tonumber(job[4] or '0'), tonumber(job[8] or '0')
if state == 'running' then
  local lease_until = tonumber(job[2] or '0')
  if job[3] == ARGV[1] then
    -- Ours (a retried claim): even past its lease nobody took it over (their token would be
    -- here), so it is renewed, never counted as a run a worker died in.
    if lease_until <= now then
      lease_until = now + tonumber(ARGV[2])
      redis.call('HSET', KEYS[1], 'lease_until', lease_until, 'updated_at', now)
      redis.call('ZADD', KEYS[2], lease_until, ARGV[4])
    end
    return {'claimed', job[6], job[7], runs, deadline_at - now, job[10] or ''}
  end
  if lease_until > now then return {'leased', lease_until - now} end
end
local taken_over = state == 'running'
local lost = runs - tonumber(job[5] or '0')
if lost >= tonumber(ARGV[3]) then return {'exhausted', lost} end
runs = runs + 1
if not taken_over then
  redis.call('HINCRBY', KEYS[3], 'queued', -1)
  redis.call('HINCRBY', KEYS[3], 'running', 1)
end
local lease_until = now + tonumber(ARGV[2])
if deadline_at == 0 or taken_over then deadline_at = now + tonumber(job[9] or '0') end
redis.call('HSET', KEYS[1], 'state', 'running', 'lease_token', ARGV[1], 'runs', runs,
           'lease_until', lease_until, 'started_at', now, 'updated_at', now,
           'deadline_at', deadline_at)
if job[11] then redis.call('HDEL', KEYS[1], 'waiting') end
redis.call('ZADD', KEYS[2], lease_until, ARGV[4])
return {'claimed', job[6], job[7], runs, deadline_at - now, job[10] or ''}
