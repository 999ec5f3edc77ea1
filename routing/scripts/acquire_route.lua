-- acquire_route: the first candidate route that may take a call now (the breaker, rate limits
-- and probe permits of routing.breaker), taking its permit, tokens and in-flight slot; one
-- round trip before a call.
--
-- KEYS: 3 per candidate route, in the order given (RouteKeys): breaker hash, probes, inflight
-- ARGV[1] attempt id, ARGV[2] order: 'given' | 'latency' | 'inflight' | 'probes' (as given,
--   half-open probes only: a closed route is passed over as 'closed'),
--   ARGV[3] tokens the call is estimated to use, ARGV[4] in-flight TTL ms,
--   then 6 values per candidate route: rpm (0 none), tpm (0 none), half-open permits,
--   probe TTL ms, manual failback (0|1), the share (0..1) of rpm and tpm this call must leave
--   in the buckets for other lanes (DeploymentConfig.reserve; 0 for the lane that reserved it)
-- Reply: {chosen (1-based index into the routes as given; 0 none), probe (0|1),
--   H, then the H indexes of routes this call moved from open to half-open,
--   then 5 values per route passed over: index, reason, ms until it may be available (relative,
--   so a worker whose clock is off by seconds still waits the right time; 0: not on its own),
--   why it opened, and for an open one what its calls said if what opened it found nothing at
--   its address ('' otherwise: record_outcome.lua's 'unreachable')}
-- Routes whose health checks fail (beat's, 'health' = 'failing') go after the healthy ones: not
-- chosen while a healthy one can be, still tried when none can. A route whose probe permits are
-- taken is looked at again after at most PROBE_POLL ms: the probe usually answers long before its
-- permit expires. With manual failback an open route stays open past its cool-down.
-- Reasons: 'cooling' (a Retry-After), 'open', 'no_probe_permit', 'rate_limited'.
-- Prepend: _clock.lua
local PROBE_POLL = 1000
local attempt, order = ARGV[1], ARGV[2]
local need, inflight_ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
local routes = {}
for i = 5, #ARGV, 6 do
  local n = #routes
  routes[n + 1] = {index = n + 1, key = KEYS[3 * n + 1], probes = KEYS[3 * n + 2],
    inflight = KEYS[3 * n + 3], rpm = tonumber(ARGV[i]), tpm = tonumber(ARGV[i + 1]),
    permits = tonumber(ARGV[i + 2]), probe_ttl = tonumber(ARGV[i + 3]),
    manual = ARGV[i + 4] == '1', held = tonumber(ARGV[i + 5])}
end

for _, r in ipairs(routes) do
  r.failing = redis.call('HGET', r.key, 'health') == 'failing'
  r.score = 0
  if order == 'latency' or order == 'inflight' then
    redis.call('ZREMRANGEBYSCORE', r.inflight, '-inf', now)
    local busy = redis.call('ZCARD', r.inflight)
    if order == 'latency' then
      local lat = redis.call('HGET', r.key, 'lat')
      if lat then
        r.score = tonumber(lat)
      elseif busy == 0 then
        r.score = 0  -- never measured: try it once
      else
        r.score = math.huge  -- never measured, and a call is already finding out
      end
    else
      r.score = busy
    end
  end
end
table.sort(routes, function(a, b)
  if a.failing ~= b.failing then return b.failing end
  if a.score ~= b.score then return a.score < b.score end
  return a.index < b.index
end)

local function refill(tokens, since, per_minute)
  if not tokens then return per_minute end
  local grown = tonumber(tokens) + (now - tonumber(since)) * per_minute / 60000
  return math.min(per_minute, grown)
end

local half_opened, skips = {}, {}
local chosen, chosen_probe = 0, 0
for _, r in ipairs(routes) do
  local key = r.key
  local b = redis.call('HMGET', key, 'state', 'open_until', 'cool_until', 'reason', 'unreachable')
  local state = b[1] or 'closed'
  local open_until, cool_until = tonumber(b[2] or '0'), tonumber(b[3] or '0')
  local reason, retry_at, probe, why, unreachable = nil, 0, 0, '', ''
  if cool_until > now then
    reason, retry_at = 'cooling', cool_until
  elseif state == 'open' and now < open_until then
    reason, retry_at, why, unreachable = 'open', open_until, b[4] or '', b[5] or ''
  elseif state == 'open' and r.manual then
    reason, why, unreachable = 'open', (b[4] or '') .. '; failback is manual', b[5] or ''
  else
    if state == 'open' then
      redis.call('HSET', key, 'state', 'half_open', 'changed_at', now, 'probe_ok', 0)
      redis.call('DEL', r.probes)
      state = 'half_open'
      half_opened[#half_opened + 1] = r.index
    end
    if state == 'half_open' then
      redis.call('ZREMRANGEBYSCORE', r.probes, '-inf', now)
      if redis.call('ZCARD', r.probes) >= r.permits then
        local first = redis.call('ZRANGE', r.probes, 0, 0, 'WITHSCORES')
        reason = 'no_probe_permit'
        retry_at = math.min(tonumber(first[2] or '0'), now + PROBE_POLL)
      else
        probe = 1
      end
    end
  end
  if not reason and probe == 0 and order == 'probes' then
    reason = 'closed'
  end
  local rpm_left, tpm_left, cost
  if not reason then
    local lim = redis.call('HMGET', key, 'rpm_tokens', 'rpm_ts', 'tpm_tokens', 'tpm_ts')
    if r.rpm > 0 then
      rpm_left = refill(lim[1], lim[2], r.rpm)
      local need_rpm = 1 + r.rpm * r.held  -- a reserve held back: the bucket keeps it
      if rpm_left < need_rpm then
        reason, retry_at = 'rate_limited', now + math.ceil((need_rpm - rpm_left) * 60000 / r.rpm)
      end
    end
    if not reason and r.tpm > 0 then
      cost = math.min(need, r.tpm * (1 - r.held))
      tpm_left = refill(lim[3], lim[4], r.tpm)
      local need_tpm = cost + r.tpm * r.held
      if tpm_left < need_tpm then
        reason, retry_at = 'rate_limited', now + math.ceil((need_tpm - tpm_left) * 60000 / r.tpm)
      end
    end
  end
  if reason then
    skips[#skips + 1] = r.index
    skips[#skips + 1] = reason
    if retry_at > 0 then
      skips[#skips + 1] = math.max(retry_at - now, 1)
    else
      skips[#skips + 1] = 0
    end
    skips[#skips + 1] = why
    skips[#skips + 1] = unreachable
  else
    if r.rpm > 0 then
      redis.call('HSET', key, 'rpm_tokens', tostring(rpm_left - 1), 'rpm_ts', now)
    end
    if r.tpm > 0 then
      redis.call('HSET', key, 'tpm_tokens', tostring(tpm_left - cost), 'tpm_ts', now)
    end
    if probe == 1 then redis.call('ZADD', r.probes, now + r.probe_ttl, attempt) end
    redis.call('ZADD', r.inflight, now + inflight_ttl, attempt)
    chosen, chosen_probe = r.index, probe
    break
  end
end
local out = {chosen, chosen_probe, #half_opened}
for _, index in ipairs(half_opened) do out[#out + 1] = index end
for _, value in ipairs(skips) do out[#out + 1] = value end
return out
