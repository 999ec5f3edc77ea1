-- reconcile_due: the jobs whose message must be sent again.
--
-- KEYS[1] due index, KEYS[2] reconciler counters (hash), KEYS[3] what every job hash starts
--   with (Keys.job_prefix): a due job's hash is KEYS[3] .. its id, known only once the index is
--   read (undeclared keys: fine on one Redis, not on a Cluster)
-- ARGV[1] most jobs to pick, ARGV[2] ms until a picked job is due again
-- Reply: {job_id, reason, ...}: reason 'queued' (still queued past the requeue delay: its
--   message may never have been sent) or 'lease_expired' (its worker died). Each job is picked
--   once per period, however many reconcilers run.
-- Prepend: _clock.lua
local picked = {}
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, job_id in ipairs(due) do
  local job = redis.call('HMGET', KEYS[3] .. job_id, 'state', 'lease_until')
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
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), job_id)
    redis.call('HINCRBY', KEYS[2], reason, 1)
    picked[#picked + 1] = job_id
    picked[#picked + 1] = reason
  end
end
return picked
