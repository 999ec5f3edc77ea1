-- record_outcome: apply a call's outcome to its route's breaker (the rules of routing.breaker)
-- and count it in the route's statistics; one round trip after a call.
--
-- KEYS (RouteKeys): KEYS[1] breaker hash, KEYS[2] probes, KEYS[3] inflight, KEYS[4] window,
--   KEYS[5] base of the per-minute statistics, KEYS[6] base of the per-day statistics (the
--   minute's and the day's hash, <base>:<bucket>, derived from Redis TIME), KEYS[7] totals,
--   KEYS[8] the latest latencies (a list, newest first)
-- ARGV[1] attempt id,
--   ARGV[2] outcome: 'success' | 'failure' | 'credential' | 'cool' | 'ignore' (routing.breaker),
--   ARGV[3] latency ms (with fractions), ARGV[4] retry-after ms,
--   ARGV[5] tokens used minus tokens estimated,
--   ARGV[6] jitter in [0, 1), then the route's settings: ARGV[7] consecutive failures,
--   ARGV[8] failure rate, ARGV[9] window ms, ARGV[10] min calls, ARGV[11] cool-down ms,
--   ARGV[12] cool-down cap ms, ARGV[13] cool-down jitter share, ARGV[14] auth cool-down ms,
--   ARGV[15] tpm (0 none), ARGV[16] probe successes that close,
--   then what the statistics count: ARGV[17] 1 for a provider call (0: a health check or a grant
--   given back), ARGV[18] error class ('' for a success), ARGV[19] latency bucket index,
--   ARGV[20] prompt tokens, ARGV[21] completion tokens, ARGV[22] cost in USD ('' unknown),
--   ARGV[23] how many latencies to keep,
--   ARGV[24] what the call said when it found nothing at the route's address ('' otherwise),
--   ARGV[25] why a 'credential' outcome opens the breaker when not a rejected credential
--   ('misconfigured: ...', routing.errors.Misconfigured; '' for 'credential rejected')
-- Optional, the usage of the call's API key (KeyUsageKeys; only with a provider call):
--   KEYS[9] its totals hash, KEYS[10] base of its per-day hashes, KEYS[11] the set of key ids;
--   ARGV[26] the key's id (env:NAME, store:NAME@slot: never its value), ARGV[27] its mask
-- Reply: {transition ('' | 'opened' | 'reopened' | 'closed' | 'cooled' | 'failback'), state,
--   reason}
-- Statistics (read by turnout status and the exporter, never by the rules): per minute
-- (calls, errors (an error class, or a slow call the breaker failed), failures as the breaker
-- counts them, latency buckets b<i>; kept 10 minutes),
-- the latest ARGV[23] latencies as '<ms>:<Redis ms>' (LPUSH, LTRIM once it is longer), per UTC
-- day (calls, errors, tokens, cost; kept 3 days) and since the start (calls, err:<class>, b<i>,
-- lat_sum, tokens, cost).
-- The hash's 'unreachable' (routing.breaker's BreakerState.unreachable): while closed, the last
-- failure's message if every failure since the last success or change of state was unreachable;
-- once open, what opened it, if so. acquire_route.lua replies it for an open route.
-- Prepend: _clock.lua
local key, probes, inflight, window_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local attempt, outcome = ARGV[1], ARGV[2]
local latency, retry_after = tonumber(ARGV[3]), tonumber(ARGV[4])
local token_delta, jitter = tonumber(ARGV[5]), tonumber(ARGV[6])
local max_consecutive, max_rate = tonumber(ARGV[7]), tonumber(ARGV[8])
local window, min_calls = tonumber(ARGV[9]), tonumber(ARGV[10])
local cooldown, cooldown_max = tonumber(ARGV[11]), tonumber(ARGV[12])
local jitter_share, auth_cooldown, tpm = tonumber(ARGV[13]), tonumber(ARGV[14]), tonumber(ARGV[15])
local close_after, is_call, error_class = tonumber(ARGV[16]), ARGV[17] == '1', ARGV[18]
local unreachable = ARGV[24] or ''
local open_reason = ARGV[25] or ''
if open_reason == '' then open_reason = 'credential rejected' end

local b = redis.call('HMGET', key, 'state', 'open_until', 'reopens', 'closed_at', 'consecutive',
                     'reason', 'lat', 'cool_until', 'probe_ok', 'failback', 'unreachable')
local state = b[1] or 'closed'
local open_until, reopens = tonumber(b[2] or '0'), tonumber(b[3] or '0')
local closed_at, consecutive = tonumber(b[4] or '0'), tonumber(b[5] or '0')
local reason = b[6] or ''

redis.call('ZREM', inflight, attempt)
-- Probe permits count only while half-open (going half-open clears them, acquire_route.lua):
-- a closed or open route's record has none to give back.
local was_probe = state == 'half_open' and redis.call('ZREM', probes, attempt) == 1
if tpm > 0 and token_delta ~= 0 then
  local used = redis.call('HGET', key, 'tpm_tokens')
  if used then
    redis.call('HSET', key, 'tpm_tokens', tostring(math.min(tpm, tonumber(used) - token_delta)))
  end
end

if is_call then
  local prompt, completion, cost = tonumber(ARGV[20]), tonumber(ARGV[21]), ARGV[22]
  local bucket = 'b' .. ARGV[19]
  local m = bucket_key(KEYS[5], MINUTE_MS)
  local d = bucket_key(KEYS[6], DAY_MS)
  local t = KEYS[7]
  -- A minute's and a day's hash get their expiry with their first call (HINCRBY replied 1):
  -- each is written during its own minute or day only.
  local new_minute = redis.call('HINCRBY', m, 'calls', 1) == 1
  local new_day = redis.call('HINCRBY', d, 'calls', 1) == 1
  redis.call('HINCRBY', t, 'calls', 1)
  redis.call('HINCRBY', m, bucket, 1)
  redis.call('HINCRBY', t, bucket, 1)
  redis.call('HINCRBYFLOAT', t, 'lat_sum', latency / 1000)
  if error_class ~= '' then
    redis.call('HINCRBY', d, 'errors', 1)
    redis.call('HINCRBY', t, 'err:' .. error_class, 1)
  end
  local failure = outcome == 'failure' or outcome == 'credential'
  if failure then redis.call('HINCRBY', m, 'failures', 1) end
  if error_class ~= '' or failure then redis.call('HINCRBY', m, 'errors', 1) end
  if redis.call('LPUSH', KEYS[8], latency .. ':' .. now) > tonumber(ARGV[23]) then
    redis.call('LTRIM', KEYS[8], 0, tonumber(ARGV[23]) - 1)
  end
  redis.call('PEXPIRE', KEYS[8], 600000)
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
  if new_minute then redis.call('PEXPIRE', m, 600000) end
  if new_day then redis.call('PEXPIRE', d, 3 * DAY_MS) end
  if KEYS[9] then
    local u, ud = KEYS[9], bucket_key(KEYS[10], DAY_MS)
    -- The key joins the set of counted keys with its first call (neither key expires).
    if redis.call('HINCRBY', u, 'calls', 1) == 1 then redis.call('SADD', KEYS[11], ARGV[26]) end
    local new_usage_day = redis.call('HINCRBY', ud, 'calls', 1) == 1
    redis.call('HSET', u, 'last_used', now, 'last_error', error_class, 'masked', ARGV[27])
    if error_class ~= '' then
      redis.call('HINCRBY', u, 'err:' .. error_class, 1)
      redis.call('HINCRBY', ud, 'errors', 1)
    end
    if prompt + completion > 0 then
      redis.call('HINCRBY', u, 'prompt_tokens', prompt)
      redis.call('HINCRBY', u, 'completion_tokens', completion)
    end
    if cost ~= '' then redis.call('HINCRBYFLOAT', u, 'cost', cost) end
    if new_usage_day then redis.call('PEXPIRE', ud, 3 * DAY_MS) end
  end
end

-- The reply's state and reason: what this run wrote, else what it read (nothing else writes
-- the hash while a script runs).
local function result(transition, now_state, now_reason)
  return {transition, now_state or state, now_reason or reason}
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
  redis.call('DEL', probes, window_key)
  return result(transition, 'open', why)
end

-- The window's buckets are window/10 wide. A success needs no totals: it counts, and only a
-- call that opens a bucket renews the hash's expiry (twice the window: a new bucket comes at
-- least every tenth of it while calls come) and drops the buckets the window left behind.
local function count(failed)
  local width = window / 10
  local current = math.floor(now / width)
  local w = window_key
  local opened_bucket = redis.call('HINCRBY', w, 'c' .. current, 1) == 1
  if failed then redis.call('HINCRBY', w, 'f' .. current, 1) end
  if opened_bucket then redis.call('PEXPIRE', w, math.ceil(window * 2)) end
  if not failed and not opened_bucket then return 0, 0 end
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
  redis.call('HSET', key, 'unreachable', '')
  if state == 'open' then
    redis.call('HSET', key, 'open_until', math.max(open_until, now + auth_cooldown),
               'reason', open_reason)
    return result('', 'open', open_reason)
  end
  return open(open_reason, auth_cooldown)
end
if outcome == 'success' then
  count(false)
  -- One HSET: the latency's moving average, and the streak reset when there is one.
  local writes = {}
  if is_call then
    local lat = latency
    if b[7] then lat = tonumber(b[7]) * 0.8 + latency * 0.2 end
    writes = {'lat', tostring(lat)}
  end
  if consecutive ~= 0 or (b[11] or '') ~= '' or not b[5] then
    writes[#writes + 1], writes[#writes + 2] = 'consecutive', 0
    writes[#writes + 1], writes[#writes + 2] = 'unreachable', ''
  end
  if #writes > 0 then redis.call('HSET', key, unpack(writes)) end
  if state == 'half_open' and was_probe then
    local ok = tonumber(b[9] or '0') + 1
    if ok < close_after then
      redis.call('HSET', key, 'probe_ok', ok)
      return result('')
    end
    redis.call('HSET', key, 'state', 'closed', 'closed_at', now, 'reason', '', 'changed_at', now,
               'probe_ok', 0, 'failback', 1)
    redis.call('DEL', window_key)
    return result('closed', 'closed', '')
  end
  if state == 'closed' and b[10] == '1' then
    redis.call('HSET', key, 'failback', 0)
    return result('failback')
  end
  return result('')
end
-- a failure; one with a Retry-After also cools the route that long (routing.breaker.record)
if retry_after > 0 then
  redis.call('HSET', key, 'cool_until', math.max(tonumber(b[8] or '0'), now + retry_after))
end
if state == 'half_open' then
  if not was_probe then return result('') end
  redis.call('HSET', key, 'unreachable', unreachable)
  return open('probe failed', nil)
end
if state == 'open' then return result('') end
local streak = ''
if unreachable ~= '' and (consecutive == 0 or (b[11] or '') ~= '') then streak = unreachable end
consecutive = consecutive + 1
redis.call('HSET', key, 'consecutive', consecutive, 'unreachable', streak)
local calls, failures = count(true)
if consecutive >= max_consecutive then
  return open(consecutive .. ' consecutive failures', nil)
end
if calls >= min_calls and failures / calls >= max_rate then
  return open(failures .. ' of ' .. calls .. ' calls failed', nil)
end
return result('')
