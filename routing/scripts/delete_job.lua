-- delete_job: undo a create whose Celery message could not be sent (the job never ran).
--
-- KEYS[1] job hash, KEYS[2] due index, KEYS[3] job counts, KEYS[4] idempotency key (absent when
--   the job has none)
-- ARGV[1] job id
-- Reply: 1 when the job was taken back; 0 when a worker already claimed it (the message did
--   reach the queue after all, though sending it raised): the job is kept, and the caller's
--   retry under the same idempotency key finds it instead of creating a second job.
-- The job's 'created' count of the day stays: it was created, then taken back.
local state = redis.call('HGET', KEYS[1], 'state')
local runs = tonumber(redis.call('HGET', KEYS[1], 'runs') or '0')
if state ~= 'queued' or runs > 0 then
  return 0
end
redis.call('ZREM', KEYS[2], ARGV[1])
if KEYS[4] then
  redis.call('DEL', KEYS[1], KEYS[4])
else
  redis.call('DEL', KEYS[1])
end
redis.call('HINCRBY', KEYS[3], 'queued', -1)
return 1
