"""Every Lua script is a file of routing/scripts, in the registry, headed by what it takes and
gives back, and compiles in a real Redis; the keys the scripts derive from Redis's clock are the
ones routing.keys spells for readers."""

import asyncio
import re
import time

import pytest
import redis.asyncio as aioredis

from routing.jobstore import AsyncJobStore, JobStore
from routing.keys import Keys
from routing.models import CompletionRequest, JobState, RoutingPolicy
from routing.redis_clock import redis_time
from routing.redis_scripts import (
    SCRIPT_NAMES,
    composed_of,
    folder_files,
    preambles_of,
    read_file,
    source,
)


def test_every_lua_file_is_a_registered_script_or_a_preamble():
    files = folder_files()
    scripts = {name.removesuffix(".lua") for name in files if not name.startswith("_")}
    assert scripts == set(SCRIPT_NAMES)
    assert {name for name in files if name.startswith("_")} == {"_clock.lua"}, "one preamble"


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_every_script_is_headed_by_its_keys_argv_and_reply(name):
    text = read_file(f"{name}.lua")
    header = []
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        header.append(line)
    assert header, f"{name}.lua opens with no comment"
    assert header[0].startswith(f"-- {name}: "), "the header opens with the script's name"
    for part in ("KEYS", "ARGV", "Reply:"):
        assert any(re.match(rf"-- {re.escape(part)}", line) for line in header), (name, part)


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_scripts_read_the_clock_only_through_the_one_preamble(name):
    text = read_file(f"{name}.lua")
    assert "'TIME'" not in text, "Redis's clock is read in _clock.lua only"
    uses_clock = re.search(r"\b(now|bucket_key|DAY_MS|MINUTE_MS)\b", _code(text)) is not None
    assert (preambles_of(text) == ["_clock.lua"]) == uses_clock
    parts_use_clock = any(
        preambles_of(read_file(f"{part}.lua")) == ["_clock.lua"] for part in composed_of(text)
    )
    assert source(name).startswith(read_file("_clock.lua")) == (uses_clock or parts_use_clock)
    assert source(name).count(read_file("_clock.lua")) <= 1, "the clock is read once per run"


def test_no_script_builds_a_key_from_its_arguments():
    for name in SCRIPT_NAMES:
        assert not re.search(r"ARGV\[\d+\]\s*\.\.", _code(read_file(f"{name}.lua"))), name


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_every_script_compiles_in_redis(redis_client, name):
    sha = redis_client.script_load(source(name))
    assert redis_client.script_exists(sha) == [True]


def test_a_job_counts_day_is_the_one_keys_spells_from_redis_time(redis_client, namespace):
    keys = Keys(namespace)
    store = JobStore(redis_client, keys, ttl_s=60)
    store.create("job-1", CompletionRequest.from_prompt("hi"), RoutingPolicy(targets=["a"]))
    store.claim("job-1", "token", lease_s=30, max_runs=1)
    store.finish("job-1", JobState.SUCCEEDED, {}, [], token="token")
    day = redis_time(redis_client).day
    assert list(redis_client.scan_iter(match=keys.job_counts_pattern)) == [keys.job_counts_on(day)]
    assert redis_client.hget(keys.job_counts_on(day), "succeeded") == "1"


def test_a_reader_whose_clock_is_a_day_off_reads_the_workers_day(
    redis_client, namespace, monkeypatch
):
    keys = Keys(namespace)
    store = JobStore(redis_client, keys, ttl_s=60)
    store.create("job-1", CompletionRequest.from_prompt("hi"), RoutingPolicy(targets=["a"]))
    skewed = time.time() + 86_400
    monkeypatch.setattr(time, "time", lambda: skewed)
    assert store.counts()["created"] == 1


def test_delete_undoes_a_create_in_one_script(redis_client, namespace):
    keys = Keys(namespace)
    store = JobStore(redis_client, keys, ttl_s=60)
    request = CompletionRequest.from_prompt("hi").model_copy(update={"idempotency_key": "once"})
    store.create("job-1", request, RoutingPolicy(targets=["a"]))
    assert store.delete("job-1", request) is True, "taken back"
    assert not redis_client.exists(keys.job("job-1"), keys.idempotency("once"))
    assert redis_client.zscore(keys.due, "job-1") is None
    assert redis_client.hget(keys.job_counts, "queued") == "0"
    assert store.create("job-2", request, RoutingPolicy(targets=["a"])) == ("job-2", True)


def test_a_job_a_worker_already_claimed_is_not_taken_back(redis_client, namespace):
    """Sending the message raised, yet it reached the queue and a worker claimed the job: the
    delete keeps the job (and its idempotency key), so the producer's retry finds it instead
    of creating a second job that would call the provider again."""
    keys = Keys(namespace)
    store = JobStore(redis_client, keys, ttl_s=60)
    request = CompletionRequest.from_prompt("hi").model_copy(update={"idempotency_key": "once"})
    store.create("job-1", request, RoutingPolicy(targets=["a"]))
    assert store.claim("job-1", "worker-token", lease_s=5, max_runs=3).status == "claimed"
    assert store.delete("job-1", request) is False, "kept: its message got through"
    assert redis_client.exists(keys.job("job-1"), keys.idempotency("once")) == 2
    assert store.create("job-2", request, RoutingPolicy(targets=["a"])) == ("job-1", False)


def test_a_create_tried_again_with_its_own_job_id_writes_nothing_twice(redis_client, namespace):
    """The first try was applied and its reply lost with the connection: the retry finds the
    record (created False, the same id) and counts nothing again, with or without a key."""
    keys = Keys(namespace)
    store = JobStore(redis_client, keys, ttl_s=60)
    policy = RoutingPolicy(targets=["a"])
    keyed = CompletionRequest.from_prompt("hi").model_copy(update={"idempotency_key": "k"})
    for job_id, request in (("job-1", CompletionRequest.from_prompt("hi")), ("job-2", keyed)):
        assert store.create(job_id, request, policy) == (job_id, True)
        store.claim(job_id, "worker-token", lease_s=5, max_runs=3)
        assert store.create(job_id, request, policy) == (job_id, False)
        assert redis_client.hget(keys.job(job_id), "state") == "running", "not reset to queued"
    assert redis_client.hget(keys.job_counts, "running") == "2"
    assert store.counts()["created"] == 2


def test_a_claim_tried_again_with_its_own_token_gets_the_same_claim(redis_client, namespace):
    """The claim was applied and its reply lost (Redis went away): the worker's retry with the
    same token gets its lease back, the run counted once; any other token finds it leased."""
    keys = Keys(namespace)
    store = JobStore(redis_client, keys, ttl_s=60)
    store.create("job-1", CompletionRequest.from_prompt("hi"), RoutingPolicy(targets=["a"]))
    first = store.claim("job-1", "token-a", lease_s=30, max_runs=3)
    again = store.claim("job-1", "token-a", lease_s=30, max_runs=3)
    assert (first.status, again.status) == ("claimed", "claimed")
    assert again.runs == first.runs == 1
    assert again.request == first.request
    assert again.policy == first.policy
    assert (again.deadline_left_s or 0) > 0
    assert store.claim("job-1", "token-b", lease_s=30, max_runs=3).status == "leased"
    assert redis_client.hget(keys.job_counts, "running") == "1"


def test_the_async_store_deletes_with_the_same_script(redis_url, redis_client, namespace):
    keys = Keys(namespace)
    request = CompletionRequest.from_prompt("hi").model_copy(update={"idempotency_key": "once"})

    async def create_then_delete():
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        store = AsyncJobStore(client, keys, ttl_s=60)
        await store.create("job-1", request, RoutingPolicy(targets=["a"]))
        await store.delete("job-1", request)
        await client.aclose()

    asyncio.run(create_then_delete())
    assert not redis_client.exists(keys.job("job-1"), keys.idempotency("once"))
    assert redis_client.zscore(keys.due, "job-1") is None
    assert redis_client.hget(keys.job_counts, "queued") == "0"


def _code(text: str) -> str:
    """The script without its comments."""
    return "\n".join(line.split("--", 1)[0] for line in text.splitlines())


def test_a_waiting_note_this_producer_cannot_read_is_no_note_not_a_failed_wait():
    from routing.jobstore import waiting_of

    newer = '{"routes": [{"route": "a", "reason": "a_reason_from_a_newer_worker"}], "until": 1.0}'
    assert waiting_of(newer) is None
    known = '{"routes": [{"route": "a", "reason": "cooling"}], "until": 1.0}'
    note = waiting_of(known)
    assert note is not None
    assert note.routes[0].route == "a"


def test_a_claim_tried_again_after_its_lease_ran_out_is_still_the_same_claim(
    redis_client, namespace
):
    """A retry that lands after the lease lapsed (Redis was away about a lease): nobody took the
    job over (the token is still ours), so the lease is renewed and no run is counted, where a
    take-over would count a run a worker died in and restart the deadline."""
    keys = Keys(namespace)
    store = JobStore(redis_client, keys, ttl_s=60)
    store.create("job-1", CompletionRequest.from_prompt("hi"), RoutingPolicy(targets=["a"]))
    first = store.claim("job-1", "token-a", lease_s=0.05, max_runs=3)
    time.sleep(0.1)
    again = store.claim("job-1", "token-a", lease_s=30, max_runs=3)
    assert (first.status, again.status) == ("claimed", "claimed")
    assert again.runs == 1
    assert store.claim("job-1", "token-b", lease_s=30, max_runs=3).status == "leased"
