-- create_job: store a queued job, unless its idempotency key already names one.
--
-- KEYS[1] job hash, KEYS[2] due index, KEYS[3] job counts (also the base of the per-day
--   counts, <KEYS[3]>:<day>, derived from Redis TIME), KEYS[4] idempotency key (absent when the
--   job has none)
-- ARGV[1] job id, ARGV[2] request json, ARGV[3] policy json, ARGV[4] ttl seconds,
--   ARGV[5] requeue delay ms, ARGV[6] the policy's deadline ms (counted from the first claim),
--   ARGV[7] the job's owner, an opaque string (absent or empty: the job has none; turnout serve
--   gives the digest of its caller's token, and shows the job to that caller only),
--   ARGV[8] the Celery queue of its lane (routing.lanes; where the reconciler re-sends it;
--   absent or empty: none recorded)
-- Reply: {1, job_id} created | {0, existing_job_id} the idempotency key already named a job |
--   {0, job_id} this job id is stored already (a retried create whose first try was applied,
--   its reply lost with the connection: the record is not written twice)
-- Prepend: _clock.lua
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, ARGV[1]} end
if KEYS[4] then
  local existing = redis.call('GET', KEYS[4])
  if existing then return {0, existing} end
  redis.call('SET', KEYS[4], ARGV[1], 'EX', ARGV[4])
end
redis.call('HSET', KEYS[1], 'state', 'queued', 'request', ARGV[2], 'policy', ARGV[3],
           'created_at', now, 'updated_at', now, 'runs', 0, 'deadline_ms', ARGV[6])
if ARGV[7] and ARGV[7] ~= '' then
  redis.call('HSET', KEYS[1], 'owner', ARGV[7])
end
if ARGV[8] and ARGV[8] ~= '' then
  redis.call('HSET', KEYS[1], 'queue', ARGV[8])
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[5]), ARGV[1])
redis.call('HINCRBY', KEYS[3], 'queued', 1)
local today = bucket_key(KEYS[3], DAY_MS)
if redis.call('HINCRBY', today, 'created', 1) == 1 then  -- its expiry once, as finish_job.lua
  redis.call('PEXPIRE', today, 3 * DAY_MS)
end
return {1, ARGV[1]}
