"""The scans and deletes tools run against a namespace read and clear the right keys."""

import redis

from ops.redis_namespace import delete_namespace, forget_routes, job_keys, queue_length
from routing.keys import Keys


def test_the_queue_length_counts_the_jobs_queue_kombu_writes(redis_url, namespace):
    keys = Keys(namespace)
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        assert queue_length(client, keys) == 0
        client.rpush(keys.queue_list(keys.queue), '{"body": "a message"}')
        client.rpush(keys.queue_list(keys.control_queue), '{"body": "not a job"}')
        assert queue_length(client, keys) == 1


def test_routes_are_forgotten_and_jobs_kept_then_the_namespace_goes(redis_url, namespace):
    keys, other = Keys(namespace), Keys(f"{namespace}-other")
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        client.hset(keys.route("primary").breaker, "state", "open")
        client.hset(keys.route("primary").totals, "calls", 3)
        client.hset(keys.job("j1"), "state", "queued")
        client.set(other.job("j2"), "x")
        forget_routes(client, keys)
        assert client.exists(keys.route("primary").breaker, keys.route("primary").totals) == 0
        assert job_keys(client, keys) == [keys.job("j1")]
        assert delete_namespace(client, namespace) == 1
        assert client.exists(other.job("j2")) == 1, "another namespace sharing a prefix stays"
        delete_namespace(client, other.namespace)
