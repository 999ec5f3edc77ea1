"""The fleet-wide breaker, rate limits and route statistics, as two Lua scripts: one round trip
before a call (ACQUIRE_ROUTE) and one after it (RECORD_OUTCOME). They apply the rules of
routing.breaker (its Python functions are the reference; tests run the same scenarios on both),
with Redis's own clock, so workers with skewed clocks agree.

Per route (``<prefix><route id>``, see routing.keys):
    hash            state, consecutive, open_until, reopens, closed_at, cool_until, reason,
                    lat (EWMA of successful latencies, ms), rpm_tokens, rpm_ts, tpm_tokens, tpm_ts
    :probes  zset   half-open probe permits: attempt id scored by expiry
    :inflight zset  calls in flight: attempt id scored by expiry (a dead worker's expire)
    :window  hash   c<bucket>/f<bucket>: calls and failures per tenth of the window

Route keys are built from ARGV (undeclared keys): right on one Redis, not on a Cluster.
"""

from __future__ import annotations

#: ``now``: Redis's clock in ms, so every worker and beat agree on time.
REDIS_NOW = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
"""

# ARGV[1] key prefix, ARGV[2] attempt id, ARGV[3] order: 'given' | 'latency' | 'inflight' |
# 'probes' (as given, half-open probes only: a closed route is passed over as 'closed'),
# ARGV[4] tokens the call is estimated to use, ARGV[5] in-flight TTL ms,
# then 6 values per candidate route: id, rpm (0 none), tpm (0 none), half-open permits,
# probe TTL ms, manual failback (0|1)
# -> {chosen (1-based index into the routes as given; 0 none), probe (0|1),
#     H, then the H indexes of routes this call moved from open to half-open,
#     then 4 values per route passed over: index, reason, ms until it may be available (relative,
#     so a worker whose clock is off by seconds still waits the right time; 0: not on its own),
#     why it opened}
# Routes whose health checks fail (beat's, 'health' = 'failing') go after the healthy ones: not
# chosen while a healthy one can be, still tried when none can. A route whose probe permits are
# taken is looked at again after at most PROBE_POLL ms: the probe usually answers long before its
# permit expires. With manual failback an open route stays open past its cool-down.
# Reasons: 'cooling' (a Retry-After), 'open', 'no_probe_permit', 'rate_limited'.
ACQUIRE_ROUTE = (
    REDIS_NOW
    + """
local PROBE_POLL = 1000
local prefix, attempt, order = ARGV[1], ARGV[2], ARGV[3]
local need, inflight_ttl = tonumber(ARGV[4]), tonumber(ARGV[5])
local routes = {}
for i = 6, #ARGV, 6 do
  routes[#routes + 1] = {index = #routes + 1, id = ARGV[i], rpm = tonumber(ARGV[i + 1]),
    tpm = tonumber(ARGV[i + 2]), permits = tonumber(ARGV[i + 3]),
    probe_ttl = tonumber(ARGV[i + 4]), manual = ARGV[i + 5] == '1'}
end

for _, r in ipairs(routes) do
  local key = prefix .. r.id
  r.failing = redis.call('HGET', key, 'health') == 'failing'
  r.score = 0
  if order == 'latency' or order == 'inflight' then
    redis.call('ZREMRANGEBYSCORE', key .. ':inflight', '-inf', now)
    local busy = redis.call('ZCARD', key .. ':inflight')
    if order == 'latency' then
      local lat = redis.call('HGET', key, 'lat')
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
  local key = prefix .. r.id
  local b = redis.call('HMGET', key, 'state', 'open_until', 'cool_until', 'reason')
  local state = b[1] or 'closed'
  local open_until, cool_until = tonumber(b[2] or '0'), tonumber(b[3] or '0')
  local reason, retry_at, probe, why = nil, 0, 0, ''
  if cool_until > now then
    reason, retry_at = 'cooling', cool_until
  elseif state == 'open' and now < open_until then
    reason, retry_at, why = 'open', open_until, b[4] or ''
  elseif state == 'open' and r.manual then
    reason, why = 'open', (b[4] or '') .. '; failback is manual'
  else
    if state == 'open' then
      redis.call('HSET', key, 'state', 'half_open', 'changed_at', now, 'probe_ok', 0)
      redis.call('DEL', key .. ':probes')
      state = 'half_open'
      half_opened[#half_opened + 1] = r.index
    end
    if state == 'half_open' then
      redis.call('ZREMRANGEBYSCORE', key .. ':probes', '-inf', now)
      if redis.call('ZCARD', key .. ':probes') >= r.permits then
        local first = redis.call('ZRANGE', key .. ':probes', 0, 0, 'WITHSCORES')
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
      if rpm_left < 1 then
        reason, retry_at = 'rate_limited', now + math.ceil((1 - rpm_left) * 60000 / r.rpm)
      end
    end
    if not reason and r.tpm > 0 then
      cost = math.min(need, r.tpm)
      tpm_left = refill(lim[3], lim[4], r.tpm)
      if tpm_left < cost then
        reason, retry_at = 'rate_limited', now + math.ceil((cost - tpm_left) * 60000 / r.tpm)
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
  else
    if r.rpm > 0 then
      redis.call('HSET', key, 'rpm_tokens', tostring(rpm_left - 1), 'rpm_ts', now)
    end
    if r.tpm > 0 then
      redis.call('HSET', key, 'tpm_tokens', tostring(tpm_left - cost), 'tpm_ts', now)
    end
    if probe == 1 then redis.call('ZADD', key .. ':probes', now + r.probe_ttl, attempt) end
    redis.call('ZADD', key .. ':inflight', now + inflight_ttl, attempt)
    chosen, chosen_probe = r.index, probe
    break
  end
end
local out = {chosen, chosen_probe, #half_opened}
for _, index in ipairs(half_opened) do out[#out + 1] = index end
for _, value in ipairs(skips) do out[#out + 1] = value end
return out
"""
)

# ARGV[1] key prefix, ARGV[2] route id, ARGV[3] attempt id,
# ARGV[4] outcome: 'success' | 'failure' | 'credential' | 'cool' | 'ignore' (routing.breaker),
# ARGV[5] latency ms, ARGV[6] retry-after ms, ARGV[7] tokens used minus tokens estimated,
# ARGV[8] jitter in [0, 1), then the route's settings: ARGV[9] consecutive failures,
# ARGV[10] failure rate, ARGV[11] window ms, ARGV[12] min calls, ARGV[13] cool-down ms,
# ARGV[14] cool-down cap ms, ARGV[15] cool-down jitter share, ARGV[16] auth cool-down ms,
# ARGV[17] tpm (0 none), ARGV[18] probe successes that close,
# then what the statistics count: ARGV[19] 1 for a provider call (0: a health check or a grant
# given back), ARGV[20] error class ('' for a success), ARGV[21] latency bucket index,
# ARGV[22] prompt tokens, ARGV[23] completion tokens, ARGV[24] cost in USD ('' unknown)
# -> {transition ('' | 'opened' | 'reopened' | 'closed' | 'cooled' | 'failback'), state, reason}
# Statistics (read by turnout status and the exporter, never by the rules): per minute
# <route>:m:<minute> (calls, errors, latency buckets b<i>; kept 10 minutes), per UTC day
# <route>:d:<day> (calls, errors, tokens, cost; kept 3 days) and since the start <route>:totals
# (calls, err:<class>, b<i>, lat_sum, tokens, cost).
RECORD_OUTCOME = (
    REDIS_NOW
    + """
local prefix, route, attempt, outcome = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local latency, retry_after = tonumber(ARGV[5]), tonumber(ARGV[6])
local token_delta, jitter = tonumber(ARGV[7]), tonumber(ARGV[8])
local max_consecutive, max_rate = tonumber(ARGV[9]), tonumber(ARGV[10])
local window, min_calls = tonumber(ARGV[11]), tonumber(ARGV[12])
local cooldown, cooldown_max = tonumber(ARGV[13]), tonumber(ARGV[14])
local jitter_share, auth_cooldown, tpm = tonumber(ARGV[15]), tonumber(ARGV[16]), tonumber(ARGV[17])
local close_after, is_call, error_class = tonumber(ARGV[18]), ARGV[19] == '1', ARGV[20]
local key = prefix .. route

redis.call('ZREM', key .. ':inflight', attempt)
local was_probe = redis.call('ZREM', key .. ':probes', attempt) == 1
if tpm > 0 and token_delta ~= 0 then
  local used = redis.call('HGET', key, 'tpm_tokens')
  if used then
    redis.call('HSET', key, 'tpm_tokens', tostring(math.min(tpm, tonumber(used) - token_delta)))
  end
end

if is_call then
  local prompt, completion, cost = tonumber(ARGV[22]), tonumber(ARGV[23]), ARGV[24]
  local bucket = 'b' .. ARGV[21]
  local m = key .. ':m:' .. math.floor(now / 60000)
  local d = key .. ':d:' .. math.floor(now / 86400000)
  local t = key .. ':totals'
  for _, h in ipairs({m, d, t}) do redis.call('HINCRBY', h, 'calls', 1) end
  redis.call('HINCRBY', m, bucket, 1)
  redis.call('HINCRBY', t, bucket, 1)
  redis.call('HINCRBYFLOAT', t, 'lat_sum', latency / 1000)
  if error_class ~= '' then
    redis.call('HINCRBY', m, 'errors', 1)
    redis.call('HINCRBY', d, 'errors', 1)
    redis.call('HINCRBY', t, 'err:' .. error_class, 1)
  end
  if prompt + completion > 0 then
    for _, h in ipairs({d, t}) do
      redis.call('HINCRBY', h, 'prompt_tokens', prompt)
      redis.call('HINCRBY', h, 'completion_tokens', completion)
    end
  end
  if cost ~= '' then
    redis.call('HINCRBYFLOAT', d, 'cost', cost)
    redis.call('HINCRBYFLOAT', t, 'cost', cost)
  end
  redis.call('PEXPIRE', m, 600000)
  redis.call('PEXPIRE', d, 3 * 86400000)
end

local b = redis.call('HMGET', key, 'state', 'open_until', 'reopens', 'closed_at', 'consecutive',
                     'reason', 'lat', 'cool_until', 'probe_ok', 'failback')
local state = b[1] or 'closed'
local open_until, reopens = tonumber(b[2] or '0'), tonumber(b[3] or '0')
local closed_at, consecutive = tonumber(b[4] or '0'), tonumber(b[5] or '0')
local reason = b[6] or ''

local function result(transition)
  local now_state = redis.call('HMGET', key, 'state', 'reason')
  return {transition, now_state[1] or 'closed', now_state[2] or ''}
end

local function open(why, fixed)
  local transition = 'opened'
  if state == 'half_open' then transition = 'reopened' end
  if state == 'closed' and now - closed_at >= cooldown_max then reopens = 0 end
  reopens = reopens + 1
  local wait = fixed
  if not wait then
    local base = math.min(cooldown_max, cooldown * 2 ^ math.min(math.max(reopens - 1, 0), 32))
    wait = base * (1 + jitter_share * (2 * jitter - 1))
  end
  redis.call('HSET', key, 'state', 'open', 'open_until', math.floor(now + wait),
             'reopens', reopens, 'reason', why, 'consecutive', 0, 'opened_at', now,
             'changed_at', now, 'probe_ok', 0, 'failback', 0)
  redis.call('DEL', key .. ':probes', key .. ':window')
  return result(transition)
end

local function count(failed)
  local width = window / 10
  local current = math.floor(now / width)
  local w = key .. ':window'
  redis.call('HINCRBY', w, 'c' .. current, 1)
  if failed then redis.call('HINCRBY', w, 'f' .. current, 1) end
  redis.call('PEXPIRE', w, math.ceil(window * 2))
  local calls, failures = 0, 0
  local fields = redis.call('HGETALL', w)
  for i = 1, #fields, 2 do
    local bucket = tonumber(string.sub(fields[i], 2))
    if bucket < current - 9 then
      redis.call('HDEL', w, fields[i])
    elseif string.sub(fields[i], 1, 1) == 'c' then
      calls = calls + tonumber(fields[i + 1])
    else
      failures = failures + tonumber(fields[i + 1])
    end
  end
  return calls, failures
end

if outcome == 'ignore' then return result('') end
if outcome == 'cool' then
  local cool_until = tonumber(b[8] or '0')
  redis.call('HSET', key, 'cool_until', math.max(cool_until, now + retry_after))
  return result('cooled')
end
if outcome == 'credential' then
  if state == 'open' then
    redis.call('HSET', key, 'open_until', math.max(open_until, now + auth_cooldown),
               'reason', 'credential rejected')
    return result('')
  end
  return open('credential rejected', auth_cooldown)
end
if outcome == 'success' then
  if is_call then
    if b[7] then
      redis.call('HSET', key, 'lat', tostring(tonumber(b[7]) * 0.8 + latency * 0.2))
    else
      redis.call('HSET', key, 'lat', tostring(latency))
    end
  end
  count(false)
  redis.call('HSET', key, 'consecutive', 0)
  if state == 'half_open' and was_probe then
    local ok = tonumber(b[9] or '0') + 1
    if ok < close_after then
      redis.call('HSET', key, 'probe_ok', ok)
      return result('')
    end
    redis.call('HSET', key, 'state', 'closed', 'closed_at', now, 'reason', '', 'changed_at', now,
               'probe_ok', 0, 'failback', 1)
    redis.call('DEL', key .. ':window')
    return result('closed')
  end
  if state == 'closed' and b[10] == '1' then
    redis.call('HSET', key, 'failback', 0)
    return result('failback')
  end
  return result('')
end
-- a failure
if state == 'half_open' then
  if not was_probe then return result('') end
  return open('probe failed', nil)
end
if state == 'open' then return result('') end
consecutive = consecutive + 1
redis.call('HSET', key, 'consecutive', consecutive)
local calls, failures = count(true)
if consecutive >= max_consecutive then
  return open(consecutive .. ' consecutive failures', nil)
end
if calls >= min_calls and failures / calls >= max_rate then
  return open(failures .. ' of ' .. calls .. ' calls failed', nil)
end
return result('')
"""
)
