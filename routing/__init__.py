"""Routing: the decisions. Models, config, policies, candidate planning, error taxonomy, and
the Redis key layout they share. No I/O to providers here."""
