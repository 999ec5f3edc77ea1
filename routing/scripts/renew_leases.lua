-- renew_leases: extend the leases a live worker holds, in one round trip.
--
-- KEYS[1] due index, KEYS[2..] job hashes
-- ARGV[1] lease ms, then for each job hash in order: its lease token, its job id
-- Reply: one flag per job: 1 renewed, 0 no longer ours (finished, or re-claimed after expiry)
-- Prepend: _clock.lua
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
