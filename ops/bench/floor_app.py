"""The Celery floor for ``ops.bench throughput``: turnout's own Celery configuration, and a task
that only sleeps for the provider's latency. What a turnout job costs beyond this is ours."""

from __future__ import annotations

import time

import redis

from routing.celery_config import create_app
from workers.settings import WorkerSettings

app = create_app()
_redis = redis.Redis(
    connection_pool=redis.BlockingConnectionPool.from_url(
        WorkerSettings().redis_url, max_connections=512
    )
)


@app.task(name="bench.sleep", acks_late=True, ignore_result=True)
def sleep(seconds: float, counter: str) -> None:
    """Wait like a provider call, then count: one Redis write, as a job's finish is one."""
    time.sleep(seconds)
    _redis.incr(counter)
