"""A Client's life: handles read the job's state alike, unknown ids are JobNotFound, and
``with Client()`` / ``async with Client()`` leave no connection open behind them.

Connections are counted on a Redis of this module's own (CLIENT LIST on a fresh embedded
server), so nobody else's clients are in the count.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import redis

from ops.embedded_redis import EmbeddedRedis
from producers import Client, JobNotFound
from routing.models import JobState
from routing.settings import CoreSettings

CONFIG = """\
deployments:
  - {id: nowhere, provider: openai, model: gpt-4o-mini, base_url: "http://127.0.0.1:9/v1"}
policies:
  default: {targets: [nowhere]}
"""


@pytest.fixture(scope="module")
def own_redis():
    with EmbeddedRedis() as server:
        yield server.url


@pytest.fixture
def make_client(own_redis, tmp_path: Path):
    config = tmp_path / "turnout.yaml"
    config.write_text(CONFIG)

    def make() -> Client:
        return Client(settings=CoreSettings(redis_url=own_redis, namespace="life"), config=config)

    return make


@pytest.fixture
def connections(own_redis):
    """How many connections Redis holds, besides the one asking, once the count settles."""
    probe = redis.Redis.from_url(own_redis)
    me = probe.client_id()

    def count(expected: int | None = None) -> int:
        deadline = time.monotonic() + 3  # a closed socket takes the server a moment to see
        while True:
            now = sum(1 for c in probe.client_list() if int(c["id"]) != me)
            if expected is None or now == expected or time.monotonic() > deadline:
                return now
            time.sleep(0.02)

    yield count
    probe.close()


def test_the_sync_and_async_handles_read_the_same_state(make_client):
    with make_client() as client:
        handle = client.submit("hello")
        assert handle.state() is JobState.QUEUED

        async def read():
            async with make_client() as other:
                return await other.ajob(handle.job_id).state()

        assert asyncio.run(read()) is JobState.QUEUED


def test_an_unknown_job_is_job_not_found_from_every_handle_method(make_client):
    with make_client() as client:
        missing = client.job("no-such-job")
        for read in (missing.state, missing.result, lambda: missing.wait(timeout=1)):
            with pytest.raises(JobNotFound, match="no job no-such-job") as raised:
                read()
            assert raised.value.job_id == "no-such-job"

        async def read_async() -> None:
            gone = client.ajob("no-such-job")
            for read in (gone.state, gone.result, lambda: gone.wait(timeout=1)):
                with pytest.raises(LookupError, match="no job no-such-job"):
                    await read()
            await client.aclose()

        asyncio.run(read_async())


def test_with_client_closes_every_connection_it_opened(make_client, connections):
    before = connections()
    with make_client() as client:
        handle = client.submit("hello")  # job store and broker connections
        with pytest.raises(JobNotFound):
            client.job("no-such-job").wait(timeout=1)  # the wait loop's and its pub/sub
        assert handle.state() is JobState.QUEUED
        assert connections() > before
    assert connections(expected=before) == before, "connections left open by a closed Client"
    assert client.store.redis is not None  # the client itself is still alive here


def test_async_with_client_closes_every_connection_it_opened(make_client, connections):
    before = connections()

    async def use():
        async with make_client() as client:
            handle = await client.asubmit("hello")
            with pytest.raises(JobNotFound):
                await client.ajob("no-such-job").wait(timeout=1)
            assert await handle.state() is JobState.QUEUED
            assert connections() > before
        return client

    client = asyncio.run(use())
    assert connections(expected=before) == before, "connections left open by a closed Client"
    assert client.store.redis is not None
