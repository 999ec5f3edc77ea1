"""Shared fixtures: a real Redis, and a namespace per test so runs never see each other's keys;
and the tier of every test, from where it lives.

The test command (``./dev test``) points REDIS_URL at a Redis that answers, starting an embedded
one when needed. A test that needs Redis and finds none fails; it is never skipped.

Tiers (registered in pyproject.toml; ``./dev test --fast`` runs ``-m "not integration"``):

- ``integration``: everything under tests/integration and tests/examples. Real worker processes,
  simulators and servers in their own processes, Celery end to end.
- ``unit``: every other test, in this one process. That includes the wire tests (tests/providers)
  and the SDK conformance tests (tests/conformance): they serve a simulator on a thread on
  127.0.0.1 and run in milliseconds, so they are in the fast tier and need no marker of their
  own. Some unit tests use the real Redis (a Lua script is only tested by running it).

A test is never marked by hand: its folder says its tier, so a test cannot be forgotten by
``--fast``, and tests/test_tiers.py checks that every collected test has exactly one tier.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
import redis

from ops.embedded_redis import redis_answers
from ops.redis_namespace import delete_namespace

TESTS = Path(__file__).parent
INTEGRATION_FOLDERS = frozenset({"integration", "examples"})
TIERS = ("unit", "integration")
COLLECTED = pytest.StashKey[list[pytest.Item]]()


def tier_of(path: Path) -> str:
    """The tier of a test file, from its first folder below tests/."""
    return "integration" if path.relative_to(TESTS).parts[0] in INTEGRATION_FOLDERS else "unit"


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects by these markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(tier_of(item.path))
    config.stash[COLLECTED] = list(items)


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
    with redis.Redis.from_url(redis_url) as client:
        delete_namespace(client, ns)


@pytest.fixture
def redis_client(redis_url):
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()
