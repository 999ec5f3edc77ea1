-- finish_and_record: a job's finish (finish_job.lua) and its last call's breaker record
-- (record_outcome.lua) in one script run: one EVALSHA for the end of a job instead of two.
--
-- KEYS: finish_job's KEYS, then record_outcome's
-- ARGV[1] how many of KEYS are finish_job's, ARGV[2] how many of the ARGV after the first two
--   are finish_job's; then finish_job's ARGV, then record_outcome's
-- Reply: {finish_job's reply, 1, record_outcome's reply} | {finish_job's reply, 0, the error
--   record_outcome raised}
-- The record runs whatever the finish says (the call happened: the breaker and the statistics
-- count it even for a duplicate or fenced run), and its error never undoes nor fails the finish,
-- as when it rode the finish's pipeline as a script of its own.
-- Compose: finish_job record_outcome
local function slice(list, from, to)
  local out = {}
  for i = from, to do out[#out + 1] = list[i] end
  return out
end
local own_keys, own_args = tonumber(ARGV[1]), tonumber(ARGV[2])
local finished = finish_job(slice(KEYS, 1, own_keys), slice(ARGV, 3, 2 + own_args))
local ok, recorded = pcall(record_outcome, slice(KEYS, own_keys + 1, #KEYS),
                           slice(ARGV, 3 + own_args, #ARGV))
if ok then return {finished, 1, recorded} end
if type(recorded) == 'table' then recorded = recorded.err or 'record_outcome failed' end
return {finished, 0, tostring(recorded)}
