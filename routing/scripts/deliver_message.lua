-- deliver_message: a popped message becomes unacknowledged, held by its consumer, in one step.
--
-- KEYS[1] kombu's unacked hash, KEYS[2] kombu's unacked index, KEYS[3] the consumer's popped
--   list the message is in, KEYS[4] the consumer's held set (Keys.consumer_held)
-- ARGV[1] delivery tag, ARGV[2] the unacked entry (kombu's JSON [message, exchange, routing
--   key]), ARGV[3] the index score (kombu's: this machine's clock, seconds), ARGV[4] the message
--   exactly as popped
-- Reply: how many copies left the popped list (1; 0 if it had been reclaimed meanwhile)
-- What kombu's QoS.append writes, plus the consumer's own bookkeeping: the message moves from
-- "popped" to "held" with no moment in which it is in neither.
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[4], ARGV[1])
return redis.call('LREM', KEYS[3], 1, ARGV[4])
