"""Workers: the Celery app, its tasks, and everything a worker process holds to run a job.

Lives here: the app and thin tasks, execution (retries, failover, the attempt log), the provider
adapters (``workers.providers``: one module per wire protocol), health checks, alerts, the
reconciler, and ``WorkerSettings``: provider credentials are read on this side only.

May import: routing (the core). Never producers and never ops: the import-linter contract in
pyproject.toml checks both.
"""
