"""Shared fixtures: a real Redis, and a namespace per test so runs never see each other's keys.

The test command (``./dev test``) points REDIS_URL at a Redis that answers, starting an embedded
one when needed. A test that needs Redis and finds none fails; it is never skipped.
"""

import os
import uuid

import pytest
import redis

from ops.embedded_redis import redis_answers


@pytest.fixture(scope="session")
def redis_url():
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    if not redis_answers(url):
        pytest.fail(f"these tests need Redis at {url}; ./dev test starts one when none answers")
    return url


@pytest.fixture
def namespace(redis_url):
    ns = f"t-{uuid.uuid4().hex[:10]}"
    yield ns
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{ns}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def redis_client(redis_url):
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()
