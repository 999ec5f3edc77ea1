"""The Lua scripts behind every job-record transition (routing.jobstore runs them).

Each script is one atomic step; each reads the time from Redis (``TIME``), never from a
worker's clock. Besides the job hash and its attempt list, the scripts keep one index:
``due``, a sorted set of unfinished job ids scored by when the reconciler should look at each
(a queued job: its creation plus the requeue delay; a running job: its lease's end).
"""

from __future__ import annotations

_NOW = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local function count_today(counts, what)
  local day = counts .. ':' .. math.floor(now / 86400000)
  redis.call('HINCRBY', day, what, 1)
  redis.call('PEXPIRE', day, 3 * 86400000)
end
"""

# KEYS[1] job hash, KEYS[2] due index, KEYS[3] job counts, KEYS[4] idempotency key (absent when
# the job has none)
# ARGV[1] job id, ARGV[2] request json, ARGV[3] policy json, ARGV[4] ttl seconds,
# ARGV[5] requeue delay ms, ARGV[6] the policy's deadline ms (counted from the first claim)
# -> {1, job_id} created | {0, existing_job_id} the idempotency key already named a job
CREATE_JOB = (
    """
if KEYS[4] then
  local existing = redis.call('GET', KEYS[4])
  if existing then return {0, existing} end
  redis.call('SET', KEYS[4], ARGV[1], 'EX', ARGV[4])
end
"""
    + _NOW
    + """
redis.call('HSET', KEYS[1], 'state', 'queued', 'request', ARGV[2], 'policy', ARGV[3],
           'created_at', now, 'updated_at', now, 'runs', 0, 'deadline_ms', ARGV[6])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[5]), ARGV[1])
redis.call('HINCRBY', KEYS[3], 'queued', 1)
count_today(KEYS[3], 'created')
return {1, ARGV[1]}
"""
)

# KEYS[1] job hash, KEYS[2] due index, KEYS[3] job counts
# ARGV[1] lease token, ARGV[2] lease ms, ARGV[3] max runs, ARGV[4] job id
# -> {'claimed', request, policy, runs, deadline remaining ms} | {'missing'}
#    | {'finished', state} | {'leased', remaining_ms} | {'exhausted', runs}
# The job's deadline is fixed at its first claim (deadline_at): a job rescheduled because every
# target was unavailable runs on with what is left of it, so rescheduling never extends it. A job
# taken over from a dead worker (still 'running', its lease expired) gets a fresh deadline: the
# lost run's time was nobody's choice, and each run still fits in the visibility timeout.
CLAIM_JOB = (
    """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing'} end
if state == 'succeeded' or state == 'failed' then return {'finished', state} end
"""
    + _NOW
    + """
if state == 'running' then
  local lease_until = tonumber(redis.call('HGET', KEYS[1], 'lease_until') or '0')
  if lease_until > now then return {'leased', lease_until - now} end
end
local taken_over = state == 'running'
local runs = tonumber(redis.call('HGET', KEYS[1], 'runs') or '0')
if runs >= tonumber(ARGV[3]) then return {'exhausted', runs} end
runs = redis.call('HINCRBY', KEYS[1], 'runs', 1)
if not taken_over then
  redis.call('HINCRBY', KEYS[3], 'queued', -1)
  redis.call('HINCRBY', KEYS[3], 'running', 1)
end
local lease_until = now + tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'state', 'running', 'lease_token', ARGV[1],
           'lease_until', lease_until, 'started_at', now, 'updated_at', now)
redis.call('ZADD', KEYS[2], lease_until, ARGV[4])
local job = redis.call('HMGET', KEYS[1], 'request', 'policy', 'deadline_at', 'deadline_ms')
local deadline_at = tonumber(job[3] or '0')
if deadline_at == 0 or taken_over then
  deadline_at = now + tonumber(job[4] or '0')
  redis.call('HSET', KEYS[1], 'deadline_at', deadline_at)
end
return {'claimed', job[1], job[2], runs, deadline_at - now}
"""
)

# KEYS[1] due index, KEYS[2..] job hashes
# ARGV[1] lease ms, then for each job hash in order: its lease token, its job id
# -> one flag per job: 1 renewed, 0 no longer ours (finished, or re-claimed after expiry)
RENEW_LEASES = (
    _NOW
    + """
local renewed = {}
for i = 2, #KEYS do
  local token, job_id = ARGV[2 * i - 2], ARGV[2 * i - 1]
  local job = redis.call('HMGET', KEYS[i], 'state', 'lease_token')
  if job[1] == 'running' and job[2] == token then
    local lease_until = now + tonumber(ARGV[1])
    redis.call('HSET', KEYS[i], 'lease_until', lease_until)
    redis.call('ZADD', KEYS[1], lease_until, job_id)
    renewed[i - 1] = 1
  else
    renewed[i - 1] = 0
  end
end
return renewed
"""
)

# KEYS[1] job hash, KEYS[2] attempt list, KEYS[3] due index, KEYS[4] job counts
# ARGV[1] final state, ARGV[2] outcome json, ARGV[3] ttl seconds, ARGV[4] done channel,
# ARGV[5] job id, ARGV[6..] attempts to append (they happened, whoever wins)
# -> {1} recorded | {0, state} the job had already finished (a duplicate run) | {-1} no record
FINISH_JOB = (
    """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  redis.call('ZREM', KEYS[3], ARGV[5])
  return {-1}
end
for i = 6, #ARGV do redis.call('RPUSH', KEYS[2], ARGV[i]) end
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('ZREM', KEYS[3], ARGV[5])
if state == 'succeeded' or state == 'failed' then return {0, state} end
"""
    + _NOW
    + """
redis.call('HINCRBY', KEYS[4], state, -1)
count_today(KEYS[4], ARGV[1])
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'outcome', ARGV[2], 'finished_at', now,
           'updated_at', now)
redis.call('HDEL', KEYS[1], 'lease_token', 'lease_until')
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[1])
return {1}
"""
)

# KEYS[1] job hash, KEYS[2] due index, KEYS[3] job counts
# ARGV[1] lease token, ARGV[2] job id, ARGV[3] delay ms
# -> 1 released | 0 not ours (finished, or re-claimed after our lease expired)
# A job every route refuses for now goes back to the queue, its worker slot freed; this run does
# not count against the job's runs, and the reconciler looks at it once the delay is over.
RELEASE_JOB = (
    """
local job = redis.call('HMGET', KEYS[1], 'state', 'lease_token')
if job[1] ~= 'running' or job[2] ~= ARGV[1] then return 0 end
"""
    + _NOW
    + """
redis.call('HSET', KEYS[1], 'state', 'queued', 'updated_at', now)
redis.call('HINCRBY', KEYS[3], 'running', -1)
redis.call('HINCRBY', KEYS[3], 'queued', 1)
redis.call('HDEL', KEYS[1], 'lease_token', 'lease_until')
redis.call('HINCRBY', KEYS[1], 'runs', -1)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]) * 2 + 1000, ARGV[2])
return 1
"""
)

# KEYS[1] due index, KEYS[2] reconciler counters (hash)
# ARGV[1] job hash key prefix, ARGV[2] most jobs to pick, ARGV[3] ms until a picked job is due
# again
# -> {job_id, reason, ...}: jobs whose message must be sent again, reason 'queued' (still queued
#    past the requeue delay: its message may never have been sent) or 'lease_expired' (its
#    worker died). Each job is picked once per period, however many reconcilers run.
# Job hashes are built from ARGV[1] (undeclared keys): fine on one Redis, not on a Cluster.
RECONCILE_DUE = (
    _NOW
    + """
local picked = {}
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, job_id in ipairs(due) do
  local job = redis.call('HMGET', ARGV[1] .. job_id, 'state', 'lease_until')
  local state, reason = job[1], nil
  if state == 'queued' then
    reason = 'queued'
  elseif state == 'running' then
    local lease_until = tonumber(job[2] or '0')
    if lease_until > now then
      redis.call('ZADD', KEYS[1], lease_until, job_id)
    else
      reason = 'lease_expired'
    end
  else
    redis.call('ZREM', KEYS[1], job_id)  -- finished, or its record expired
  end
  if reason then
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), job_id)
    redis.call('HINCRBY', KEYS[2], reason, 1)
    picked[#picked + 1] = job_id
    picked[#picked + 1] = reason
  end
end
return picked
"""
)
