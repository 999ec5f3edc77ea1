-- write_key: change one key of the encrypted key store, count the change and announce it, in
-- one step (workers.key_store). Values arrive sealed (AES-256-GCM): this script never sees a
-- plaintext key. Every write is a compare-and-set on the record's current sealed value, so two
-- operators rotating at once cannot lose a value between them.
--
-- KEYS (KeyStoreKeys): KEYS[1] the key's record hash, KEYS[2] its previous value (a string,
--   with the grace period as TTL), KEYS[3] the set of names, KEYS[4] the store's version
-- ARGV[1] mode: 'set' (a new name, or one revoked) | 'rotate' (current becomes previous for
--   ARGV[4] ms) | 'revoke' (current and previous gone, a tombstone left) | 'reseal' (the same
--   values sealed again, under a new master key) | 'rollback' (previous back as current),
--   ARGV[2] the current sealed value the caller read ('' none), ARGV[3] the new current sealed
--   value ('' for revoke and rollback), ARGV[4] grace ms, ARGV[5] the name, ARGV[6] the channel
--   to publish on, ARGV[7] the new value's slot (set, rotate), ARGV[8] the previous sealed value
--   the caller read and ARGV[9] its new sealing ('' none; reseal only)
-- Reply: {status, version}: status 'ok', 'changed' (the record is not what the caller read:
--   read again), 'exists' (set on a live key: rotate it), 'absent' (nothing to rotate, revoke or
--   roll back to); version: the store's version after the change (0 when refused)
-- Prepend: _clock.lua
local record, previous, names, version = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local mode, expected, sealed, grace = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local current = redis.call('HGET', record, 'current') or ''
if current ~= expected then return {'changed', 0} end

if mode == 'set' then
  if current ~= '' then return {'exists', 0} end
  redis.call('DEL', previous)
  redis.call('HDEL', record, 'revoked_at')
  redis.call('HSET', record, 'current', sealed, 'slot', ARGV[7], 'set_at', now)
elseif mode == 'rotate' then
  if current == '' then return {'absent', 0} end
  if grace > 0 then
    redis.call('SET', previous, current, 'PX', grace)
  else
    redis.call('DEL', previous)
  end
  redis.call('HSET', record, 'current', sealed, 'slot', ARGV[7], 'set_at', now)
elseif mode == 'revoke' then
  if current == '' then return {'absent', 0} end
  redis.call('DEL', previous)
  redis.call('HDEL', record, 'current')
  redis.call('HSET', record, 'revoked_at', now)
elseif mode == 'rollback' then
  local old = redis.call('GET', previous)
  if not old then return {'absent', 0} end
  redis.call('DEL', previous)
  redis.call('HSET', record, 'current', old, 'set_at', now)
elseif mode == 'reseal' then
  local old = redis.call('GET', previous) or ''
  if old ~= ARGV[8] then return {'changed', 0} end
  if current ~= '' then redis.call('HSET', record, 'current', sealed) end
  if old ~= '' and ARGV[9] ~= '' then redis.call('SET', previous, ARGV[9], 'KEEPTTL') end
else
  return redis.error_reply('unknown mode ' .. mode)
end
redis.call('SADD', names, ARGV[5])
local v = redis.call('INCR', version)
redis.call('PUBLISH', ARGV[6], v)
return {'ok', v}
