"""The job record's transitions, against a real Redis (the Lua scripts are the logic)."""

import asyncio
import json
import time

import pytest
import redis
import redis.asyncio as aioredis

from routing.errors import ErrorClass
from routing.jobstore import AsyncJobStore, FinishStatus, JobStore, redis_client
from routing.keys import Keys
from routing.models import (
    Attempt,
    CompletionRequest,
    JobState,
    RoutingPolicy,
    SpentBudget,
    Waiting,
    WaitingRoute,
)
from routing.routes import ScriptCall

POLICY = RoutingPolicy(targets=["a"])


@pytest.fixture
def store(redis_url, namespace):
    client = redis_client(redis_url)
    yield JobStore(client, Keys(namespace), ttl_s=600)
    client.close()


def attempt(outcome="ok", run=1):
    return Attempt(
        deployment="a",
        provider="openai",
        model="m",
        outcome=outcome,
        status_code=200,
        latency_ms=12.5,
        run=run,
        started_at=time.time(),
    )


def test_create_then_read_back(store):
    request = CompletionRequest.from_prompt("hi")
    job_id, created = store.create("job-1", request, POLICY)
    assert (job_id, created) == ("job-1", True)
    result = store.get("job-1")
    assert result is not None
    assert (result.state, result.runs, result.text) == (JobState.QUEUED, 0, None)
    assert result.created_at is not None
    assert abs(result.created_at - time.time()) < 60
    assert store.redis.ttl(store.keys.job("job-1")) > 0, "records expire"


def test_create_records_the_owner_it_is_given_and_only_then(store):
    request = CompletionRequest.from_prompt("hi")
    store.create("job-1", request, POLICY, owner="digest-of-a")
    store.create("job-2", request, POLICY)
    owned, unowned = store.read("job-1"), store.read("job-2")
    assert owned is not None
    assert unowned is not None
    assert owned.owner == "digest-of-a"
    assert store.redis.hget(store.keys.job("job-1"), "owner") == "digest-of-a"
    assert unowned.owner is None
    assert not store.redis.hexists(store.keys.job("job-2"), "owner")
    assert owned.result == store.get("job-1"), "the owner is beside the result, never in it"
    assert "digest-of-a" not in owned.result.model_dump_json()
    assert store.read("job-3") is None


def test_the_async_store_records_and_reads_the_owner_too(redis_url, namespace):
    async def create_then_read():
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        store = AsyncJobStore(client, Keys(namespace), ttl_s=60)
        await store.create("job-1", CompletionRequest.from_prompt("hi"), POLICY, owner="a")
        stored = await store.read("job-1")
        await client.aclose()
        return stored

    stored = asyncio.run(create_then_read())
    assert stored is not None
    assert (stored.owner, stored.result.job_id) == ("a", "job-1")


def test_a_repeated_idempotency_key_keeps_the_first_owner(store):
    request = CompletionRequest.model_validate(
        {"messages": [{"role": "user", "content": "hi"}], "idempotency_key": "k-1"}
    )
    assert store.create("job-1", request, POLICY, owner="a") == ("job-1", True)
    assert store.create("job-2", request, POLICY, owner="b") == ("job-1", False)
    stored = store.read("job-1")
    assert stored is not None
    assert stored.owner == "a"


def test_an_idempotency_key_maps_to_one_job(store):
    request = CompletionRequest.model_validate(
        {"messages": [{"role": "user", "content": "hi"}], "idempotency_key": "order-42"}
    )
    assert store.create("job-1", request, POLICY) == ("job-1", True)
    assert store.create("job-2", request, POLICY) == ("job-1", False)
    assert store.get("job-2") is None


def test_claims_leases_and_poison_runs(store):
    store.create("job-1", CompletionRequest.from_prompt("hi"), POLICY)
    first = store.claim("job-1", "token-a", lease_s=5, max_runs=2)
    assert first.status == "claimed"
    assert first.request is not None
    assert first.request.messages[0].content == "hi"
    assert first.policy == POLICY
    assert first.runs == 1

    second = store.claim("job-1", "token-b", lease_s=5, max_runs=2)
    assert second.status == "leased", "a live lease keeps a second worker out"
    assert 4 < second.lease_remaining_s <= 5

    store.redis.hset(store.keys.job("job-1"), "lease_until", 0)  # the first worker died
    assert store.claim("job-1", "token-b", lease_s=5, max_runs=2).runs == 2
    store.redis.hset(store.keys.job("job-1"), "lease_until", 0)
    exhausted = store.claim("job-1", "token-c", lease_s=5, max_runs=2)
    assert (exhausted.status, exhausted.runs) == ("exhausted", 2)


def test_the_deadline_runs_from_the_first_claim_across_reschedules(store):
    store.create(
        "job-1", CompletionRequest.from_prompt("hi"), RoutingPolicy(targets=["a"], deadline_s=60)
    )
    first = store.claim("job-1", "token-a", lease_s=5, max_runs=2)
    assert first.deadline_left_s == pytest.approx(60, abs=0.5)
    time.sleep(0.3)
    assert store.release("job-1", "token-a", delay_s=0)
    again = store.claim("job-1", "token-b", lease_s=5, max_runs=2)
    assert again.status == "claimed"
    assert again.deadline_left_s is not None
    assert again.deadline_left_s <= 59.75, "a rescheduled job runs on with what is left of it"
    assert again.runs == 2, "the second delivery: an attempt's run says which it was"
    assert not store.release("job-1", "token-a", delay_s=0), "only the lease holder releases"


def test_reschedules_never_make_a_poison_job_and_carry_what_was_spent(store):
    store.create("job-1", CompletionRequest.from_prompt("hi"), POLICY)
    spent = SpentBudget(calls={"a": 2, "b": 1}, dropped=["b"])
    for run in range(1, 5):
        claim = store.claim("job-1", f"token-{run}", lease_s=5, max_runs=2)
        assert (claim.status, claim.runs) == ("claimed", run), "reschedules are not lost runs"
        assert claim.spent == (spent if run > 1 else SpentBudget())
        assert store.release("job-1", f"token-{run}", delay_s=0, spent=spent)
    assert store.get("job-1").runs == 4
    store.claim("job-1", "token-5", lease_s=5, max_runs=2)
    store.redis.hset(store.keys.job("job-1"), "lease_until", 0)  # its worker died
    taken = store.claim("job-1", "token-6", lease_s=5, max_runs=2)
    assert (taken.runs, taken.spent) == (6, spent), "the last reschedule's budget, after a death"
    store.redis.hset(store.keys.job("job-1"), "lease_until", 0)
    exhausted = store.claim("job-1", "token-7", lease_s=5, max_runs=2)
    assert (exhausted.status, exhausted.runs) == ("exhausted", 2), "two runs a worker died in"


def test_a_spent_budget_a_newer_worker_wrote_reads_as_nothing_spent(store):
    store.create("job-1", CompletionRequest.from_prompt("hi"), POLICY)
    store.redis.hset(store.keys.job("job-1"), "budget", '{"calls": {"a": 1}, "per_key": {}}')
    assert store.claim("job-1", "token", lease_s=5, max_runs=2).spent == SpentBudget()


def test_a_job_taken_over_from_a_dead_worker_gets_a_fresh_deadline(store):
    store.create(
        "job-1", CompletionRequest.from_prompt("hi"), RoutingPolicy(targets=["a"], deadline_s=60)
    )
    store.claim("job-1", "token-a", lease_s=0.2, max_runs=3)
    time.sleep(0.5)
    taken = store.claim("job-1", "token-b", lease_s=5, max_runs=3)
    assert taken.status == "claimed"
    assert taken.runs == 2
    assert taken.deadline_left_s == pytest.approx(60, abs=0.1)


def test_a_missing_job_is_reported(store):
    assert store.claim("nope", "t", lease_s=5, max_runs=3).status == "missing"


def test_renew_extends_only_leases_still_held(store):
    for job_id in ("job-1", "job-2"):
        store.create(job_id, CompletionRequest.from_prompt("hi"), POLICY)
    store.claim("job-1", "mine", lease_s=1, max_runs=3)
    store.claim("job-2", "theirs", lease_s=1, max_runs=3)
    assert store.renew({"job-1": "mine", "job-2": "mine"}, lease_s=30) == {
        "job-1": True,
        "job-2": False,
    }
    assert store.claim("job-1", "other", lease_s=1, max_runs=3).lease_remaining_s > 20


def test_the_first_finish_wins_and_publishes(store):
    store.create("job-1", CompletionRequest.from_prompt("hi"), POLICY)
    store.claim("job-1", "t", lease_s=5, max_runs=3)
    pubsub = store.redis.pubsub()
    pubsub.subscribe(store.keys.done_channel("job-1"))
    store.append_attempts("job-1", [attempt("overloaded")])
    won = store.finish(
        "job-1", JobState.SUCCEEDED, {"text": "hello", "deployment": "a"}, [attempt()], token="t"
    )
    lost = store.finish(
        "job-1",
        JobState.FAILED,
        {"error": {"class": ErrorClass.INTERNAL.value, "message": "late duplicate"}},
        [attempt("server_error", run=2)],
        token="t",
    )
    assert (won, lost) == (True, False)
    result = store.get("job-1")
    assert result is not None
    assert (result.state, result.text, result.error) == (JobState.SUCCEEDED, "hello", None)
    assert [a.outcome for a in result.attempts] == ["overloaded", "ok", "server_error"]
    messages = [pubsub.get_message(timeout=1) for _ in range(2)]
    assert messages[1] is not None
    assert messages[1]["data"] == "succeeded"
    assert store.claim("job-1", "t2", lease_s=5, max_runs=3).status == "finished"
    pubsub.close()


def test_a_run_whose_lease_was_taken_over_is_fenced_off(store):
    """The late worker (lease expired, job claimed by another) cannot finish it, before or after
    the other run finishes; its attempts are still logged."""
    store.create("job-1", CompletionRequest.from_prompt("hi"), POLICY)
    assert store.claim("job-1", "late", lease_s=0.05, max_runs=3).status == "claimed"
    time.sleep(0.1)
    assert store.claim("job-1", "taker", lease_s=5, max_runs=3).status == "claimed"
    early, _ = store.finish_with(
        "job-1", JobState.FAILED, {"error": None}, [attempt("timeout")], riders=(), token="late"
    )
    assert early is FinishStatus.FENCED, "the taker still runs: the late run may not finish"
    assert store.state("job-1") is JobState.RUNNING
    assert store.finish(
        "job-1", JobState.SUCCEEDED, {"text": "taker"}, [attempt(run=2)], token="taker"
    )
    late, _ = store.finish_with(
        "job-1", JobState.SUCCEEDED, {"text": "late"}, [], riders=(), token="late"
    )
    assert late is FinishStatus.ALREADY_FINISHED
    result = store.get("job-1")
    assert result is not None
    assert (result.text, result.runs) == ("taker", 2)
    assert [(a.outcome, a.run) for a in result.attempts] == [("timeout", 1), ("ok", 2)]


def test_a_lapsed_lease_nobody_took_still_finishes_and_no_token_needs_no_live_lease(store):
    store.create("job-1", CompletionRequest.from_prompt("hi"), POLICY)
    store.claim("job-1", "slow", lease_s=0.05, max_runs=3)
    time.sleep(0.1)
    assert store.finish("job-1", JobState.SUCCEEDED, {"text": "ok"}, [], token="slow")
    store.create("job-2", CompletionRequest.from_prompt("hi"), POLICY)
    store.claim("job-2", "busy", lease_s=5, max_runs=3)
    assert not store.finish("job-2", JobState.FAILED, {"error": None}, []), "a live lease"
    status, _ = store.finish_with("gone", JobState.FAILED, {}, [], riders=(), token="x")
    assert status is FinishStatus.MISSING


def test_the_reconciler_picks_lost_jobs_once_per_period(redis_url, namespace):
    client = redis_client(redis_url)
    store = JobStore(client, Keys(namespace), ttl_s=600, requeue_after_s=0.2)
    request = CompletionRequest.from_prompt("hi")
    for job_id in ("queued", "running", "dead", "done"):
        store.create(job_id, request, POLICY)
    assert store.pick_due(limit=10, recheck_s=60) == [], "nothing is due before its time"

    store.claim("running", "alive", lease_s=30, max_runs=3)
    store.claim("dead", "gone", lease_s=0.1, max_runs=3)
    store.claim("done", "t", lease_s=30, max_runs=3)
    store.finish("done", JobState.SUCCEEDED, {"text": "ok"}, [], token="t")
    time.sleep(0.3)

    assert sorted(store.pick_due(limit=10, recheck_s=60)) == [
        ("dead", "lease_expired"),
        ("queued", "queued"),
    ]
    assert store.pick_due(limit=10, recheck_s=60) == [], "picked once per period"
    assert client.zscore(store.keys.due, "done") is None, "finished jobs leave the index"
    assert client.hgetall(store.keys.reconciler_counts) == {"queued": "1", "lease_expired": "1"}
    client.close()


def test_a_rider_script_shares_the_finish_round_trip(store):
    store.create("job-1", CompletionRequest.from_prompt("hi"), POLICY)
    store.claim("job-1", "t", lease_s=5, max_runs=3)
    marker = store.keys.scratch("rider")
    rider = ScriptCall(
        store.redis.register_script("return redis.call('INCR', KEYS[1])"), [marker], []
    )
    store.redis.script_flush()  # neither script is cached: each is sent again, alone
    finished, replies = store.finish_with(
        "job-1", JobState.SUCCEEDED, {"text": "ok"}, [attempt()], riders=[rider], token="t"
    )
    assert finished is FinishStatus.RECORDED
    assert replies == [1]
    result = store.get("job-1")
    assert result is not None
    assert result.state is JobState.SUCCEEDED

    store.create("job-2", CompletionRequest.from_prompt("hi"), POLICY)
    store.claim("job-2", "t", lease_s=5, max_runs=3)
    failing = ScriptCall(store.redis.register_script("return redis.error_reply('no')"), [], [])
    finished, replies = store.finish_with(
        "job-2", JobState.SUCCEEDED, {"text": "ok"}, [], riders=[rider, failing], token="t"
    )
    assert finished is FinishStatus.RECORDED, "a rider's failure never fails the finish"
    assert replies[0] == 2
    assert isinstance(replies[1], Exception)
    store.redis.delete(marker)


class CountingConnection(redis.Connection):
    """Counts what goes out on the wire: a pipeline is one send."""

    sends = 0

    def send_packed_command(self, command, check_health=True):
        CountingConnection.sends += 1
        super().send_packed_command(command, check_health)


def test_with_its_scripts_cached_a_finish_and_its_rider_are_one_round_trip(store, redis_url):
    counted = redis.Redis(
        connection_pool=redis.ConnectionPool.from_url(
            redis_url, connection_class=CountingConnection, decode_responses=True
        )
    )
    try:
        counting = JobStore(counted, store.keys, ttl_s=600)
        marker = store.keys.scratch("rider")
        rider = ScriptCall(
            counted.register_script("return redis.call('INCR', KEYS[1])"), [marker], []
        )
        for job_id in ("warm", "job"):  # the first run loads the scripts into Redis
            counting.create(job_id, CompletionRequest.from_prompt("hi"), POLICY)
            counting.claim(job_id, "t", lease_s=5, max_runs=3)
            before = CountingConnection.sends
            finished, replies = counting.finish_with(
                job_id, JobState.SUCCEEDED, {"text": "ok"}, [attempt()], riders=[rider], token="t"
            )
            assert finished is FinishStatus.RECORDED
        assert replies == [2]
        assert CountingConnection.sends - before == 1, "the rider rode the finish"
        counted.delete(marker)
    finally:
        counted.close()


def test_jobs_are_counted_by_state(store):
    request = CompletionRequest.from_prompt("hi")
    for job_id in ("job-1", "job-2", "job-3"):
        store.create(job_id, request, POLICY)
    assert store.counts() == {
        "queued": 3,
        "running": 0,
        "created": 3,
        "succeeded": 0,
        "failed": 0,
    }
    store.claim("job-1", "t1", lease_s=5, max_runs=3)
    store.claim("job-2", "t2", lease_s=5, max_runs=3)
    store.release("job-2", "t2", delay_s=1)
    store.claim("job-3", "t3", lease_s=0.1, max_runs=3)
    time.sleep(0.2)
    store.claim("job-3", "t3b", lease_s=5, max_runs=3)  # taken over: still one running
    assert (store.counts()["queued"], store.counts()["running"]) == (1, 2)
    store.finish("job-1", JobState.SUCCEEDED, {"text": "ok"}, [], token="t1")
    store.finish("job-3", JobState.FAILED, {"error": None}, [], token="t3b")
    store.finish("job-3", JobState.SUCCEEDED, {"text": "late"}, [], token="t3b")  # a duplicate
    assert store.counts() == {
        "queued": 1,
        "running": 0,
        "created": 3,
        "succeeded": 1,
        "failed": 1,
    }


def test_a_released_job_says_what_it_waits_for_until_it_is_claimed_again(store):
    store.create("job-1", CompletionRequest.from_prompt("hi"), RoutingPolicy(targets=["a"]))
    store.claim("job-1", "token-a", lease_s=5, max_runs=2)
    waiting = Waiting(
        routes=[WaitingRoute(route="a", reason="cooling", until=1_700_000_030.0)],
        until=1_700_000_030.0,
    )
    skipped = Attempt(
        deployment="a", provider="openai", model="m", outcome="skipped", started_at=1.0
    )
    assert store.release("job-1", "token-a", delay_s=30, waiting=waiting, attempts=[skipped])
    queued = store.get("job-1")
    assert queued is not None
    assert (queued.state, queued.waiting) == (JobState.QUEUED, waiting)
    assert queued.attempts == [skipped], "the run's attempts ride the release"
    store.claim("job-1", "token-b", lease_s=5, max_runs=2)
    running = store.get("job-1")
    assert running is not None
    assert running.waiting is None, "a claimed job waits no more"


def _breaker_record(client, keys, attempt_id="attempt-1"):
    from routing.breaker import BreakerSettings
    from routing.config import DeploymentConfig
    from routing.fleet_router import FleetRouter
    from routing.routes import CallOutcome, Grant, Route

    route = Route(DeploymentConfig(id="a", provider="openai", model="m"), None, BreakerSettings())
    grant = Grant(route, attempt_id, False, "fleet")
    fleet = FleetRouter(client, keys.route_prefix, shares_job_store_redis=True)
    rider = fleet.rider(grant, CallOutcome(error_class=None, latency_s=0.2))
    assert rider is not None
    return rider


def test_a_breaker_record_rides_the_finish_inside_its_script_run(store, redis_url):
    counted = redis.Redis(
        connection_pool=redis.ConnectionPool.from_url(
            redis_url, connection_class=CountingConnection, decode_responses=True
        )
    )
    try:
        counting = JobStore(counted, store.keys, ttl_s=600)
        for job_id in ("warm", "job"):  # the first run loads the script into Redis
            counting.create(job_id, CompletionRequest.from_prompt("hi"), POLICY)
            counting.claim(job_id, "t", lease_s=5, max_runs=3)
            rider = _breaker_record(counted, store.keys, f"attempt-{job_id}")
            before = CountingConnection.sends
            finished, replies = counting.finish_with(
                job_id,
                JobState.SUCCEEDED,
                {"text": "ok"},
                [attempt()],
                riders=[rider.call],
                token="t",
            )
            assert finished is FinishStatus.RECORDED
        assert CountingConnection.sends - before == 1, "one EVALSHA: finish and record"
        assert rider.transition_of(replies[0]) is None
        assert counted.hget(store.keys.route("a").totals, "calls") == "2"
        assert store.state("job") is JobState.SUCCEEDED
        assert [a.outcome for a in store.get("job").attempts] == ["ok"]
    finally:
        counted.close()


def test_a_record_that_fails_inside_the_finishs_run_neither_fails_nor_undoes_it(store):
    store.create("job-1", CompletionRequest.from_prompt("hi"), POLICY)
    store.claim("job-1", "t", lease_s=5, max_runs=3)
    good = _breaker_record(store.redis, store.keys).call
    broken = ScriptCall(good.script, good.keys, [])  # no arguments: the record's Lua errors
    finished, replies = store.finish_with(
        "job-1", JobState.SUCCEEDED, {"text": "ok"}, [attempt()], riders=[broken], token="t"
    )
    assert finished is FinishStatus.RECORDED
    assert isinstance(replies[0], redis.RedisError)
    assert store.state("job-1") is JobState.SUCCEEDED
    assert store.counts()["succeeded"] == 1
    assert store.redis.hget(store.keys.route("a").totals, "calls") is None


def test_a_finish_that_is_refused_still_records_its_call(store):
    store.create("job-1", CompletionRequest.from_prompt("hi"), POLICY)
    store.claim("job-1", "t", lease_s=5, max_runs=3)
    store.finish("job-1", JobState.SUCCEEDED, {"text": "first"}, [], token="t")
    finished, replies = store.finish_with(
        "job-1",
        JobState.SUCCEEDED,
        {"text": "second"},
        [],
        riders=[_breaker_record(store.redis, store.keys).call],
        token="t",
    )
    assert finished is FinishStatus.ALREADY_FINISHED
    assert not isinstance(replies[0], Exception)
    assert store.redis.hget(store.keys.route("a").totals, "calls") == "1", "the call happened"


def test_a_job_using_nothing_new_is_stored_as_an_older_worker_reads_it(redis_client, namespace):
    """Rolling upgrades: the policy and request models forbid fields they do not know, so a
    record holds only what was set (defaults and unset options left out), and an interactive
    lane is left out too: a worker of the release before reads such a job."""
    keys = Keys(namespace)
    store = JobStore(redis_client, keys, ttl_s=60)
    policy = RoutingPolicy(targets=["a"], lane="interactive")
    store.create("job-1", CompletionRequest.from_prompt("hi"), policy)
    stored_policy = json.loads(redis_client.hget(keys.job("job-1"), "policy"))
    stored_request = json.loads(redis_client.hget(keys.job("job-1"), "request"))
    assert stored_policy == {"targets": ["a"]}
    assert stored_request["messages"] == [{"role": "user", "content": "hi"}]
    assert set(stored_request) <= {"messages", "metadata"}, "fields older releases know"
    claim = store.claim("job-1", "t", lease_s=30, max_runs=3)
    assert claim.policy == RoutingPolicy(targets=["a"]), "read back as it was meant"
