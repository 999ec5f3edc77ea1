"""What the tools around a stack read and clear in its namespace: tests, benchmarks and the
testing switch (``ops.testing``) each used to spell these scans and deletes themselves."""

from __future__ import annotations

import redis

from routing.keys import Keys


def delete_matching(client: redis.Redis, pattern: str) -> int:
    """Delete every key matching ``pattern`` (a SCAN pattern from Keys); how many went."""
    keys = list(client.scan_iter(match=pattern, count=1000))
    if keys:
        client.delete(*keys)
    return len(keys)


def delete_namespace(client: redis.Redis, namespace: str) -> int:
    """Everything of a namespace, Celery's queues included: a test's or a benchmark's end."""
    return delete_matching(client, Keys(namespace).pattern)


def forget_routes(client: redis.Redis, keys: Keys) -> None:
    """Every route's breaker, latency and rate buckets: the next test starts closed."""
    delete_matching(client, keys.route_pattern)


def job_keys(client: redis.Redis, keys: Keys) -> list[str]:
    """The namespace's job records and attempt logs ("nothing was enqueued" checks)."""
    return [str(key) for key in client.scan_iter(match=keys.job_pattern)]


#: Most bulk queues a deployment may have (CoreSettings.bulk_queues' bound).
MOST_BULK_QUEUES = 64


def queue_length(client: redis.Redis, keys: Keys) -> int:
    """Messages waiting in the lanes' queues (routing.lanes), not yet taken by a worker."""
    pipe = client.pipeline(transaction=False)
    pipe.llen(keys.queue_list(keys.queue))
    for slot in range(MOST_BULK_QUEUES):
        pipe.llen(keys.queue_list(keys.bulk_queue(slot)))
    return sum(int(n) for n in pipe.execute())
