"""The shared core: what producers and workers both import, and which imports nothing of theirs.

Lives here: the request, result and policy models, config loading, policies and planning, the
model capability and price table, the error taxonomy, the breaker and rate limits (pure rules in
``breaker``; the route values and ``CallOutcome`` in ``routes``; one module per router, the
fleet-wide one in Redis in ``fleet_router``), and what both sides of the queue share: the job
record and its store (``jobstore``, with ``redis_client``), the queue contract (``celery_config``:
task and queue names, the deadline ceiling, the Celery configuration; ``broker``: the kombu
transport), the core settings (``settings``: Redis URLs, namespace, timeouts, and no credential),
and every Redis key (``keys``).

May import: the standard library and third-party packages only. Never producers, workers or ops
(the import-linter contract in pyproject.toml fails ``./dev test`` otherwise). No provider I/O.
"""
