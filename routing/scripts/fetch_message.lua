-- fetch_message: take the next message of the first non-empty queue, without blocking, into
-- this consumer's popped list for that queue (so a consumer that dies holding it loses nothing).
--
-- KEYS[1..n] the queue lists, in the order to try (kombu's fair cycle), KEYS[n+1..2n] this
--   consumer's popped list for each queue, in the same order (Keys.consumer_popped)
-- ARGV: none
-- Reply: {i, message}: the message moved out of KEYS[i] | nil: every queue was empty
-- The move is atomic: the message is in its queue or in the popped list, never nowhere. BRPOP
-- cannot give that over several queues, and BLMOVE takes one source: routing.broker blocks with
-- BLMOVE on the jobs queue when this found nothing, and calls this between blocks.
local n = #KEYS / 2
for i = 1, n do
  local message = redis.call('LMOVE', KEYS[i], KEYS[n + i], 'RIGHT', 'LEFT')
  if message then return {i, message} end
end
return false
