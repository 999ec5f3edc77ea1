"""``turnout batch`` left to run alone: nothing lost to stderr, a summary that says how it went,
Redis away ridden out. No Redis here: only lines that never reach a submit, and the pure parts."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import time

import pytest
import redis
from rich.console import Console

from producers.batch import run_batch
from producers.batch_plan import BatchPlan
from producers.batch_summary import BatchOutcome, BatchTally, summary_line
from producers.client import Client
from producers.redis_patience import RedisPatience, is_redis_outage, redacted, redis_location
from producers.settings import ProducerSettings
from routing.config import parse_config
from routing.errors import RedisUnavailable, SubmitError
from routing.models import Attempt, CompletionResult, JobError, JobState

CONFIG = parse_config(
    {
        "deployments": [{"id": "primary", "provider": "openai", "model": "gpt-4o-mini"}],
        "policies": {"default": {"targets": ["primary"]}},
    }
)


@pytest.fixture
def client():
    made = Client(settings=ProducerSettings(REDIS_URL="redis://127.0.0.1:1/0"), config=CONFIG)
    yield made
    made.close()


def batch(client, source, output):
    shown = io.StringIO()
    outcome = run_batch(
        client,
        source,
        output,
        policy=None,
        max_in_flight=4,
        strict=False,
        retry_failed=False,
        console=Console(file=shown, width=200),
    )
    return outcome, shown.getvalue()


def test_invalid_lines_go_to_the_errors_file_with_their_number_and_why_once(tmp_path, client):
    source = tmp_path / "in.jsonl"
    source.write_text('{oops\n\n{"custom_id": "c", "messages": []}\n')
    output = tmp_path / "out.jsonl"
    _, shown = batch(client, source, output)
    assert "line 1: not JSON" in shown
    errors = [json.loads(line) for line in (tmp_path / "out.errors.jsonl").read_text().splitlines()]
    assert [(e["line"], e["custom_id"], e["error"]["code"]) for e in errors] == [
        (1, None, "invalid_line"),
        (3, "c", "invalid_line"),
    ]
    assert errors[0]["error"]["message"].startswith("not JSON")
    assert errors[1]["response"] is None

    outcome, _ = batch(client, source, output)  # run again: reported, not written twice
    assert len((tmp_path / "out.errors.jsonl").read_text().splitlines()) == 2
    assert outcome.plan.failed_before == 0, "an invalid line is not a failed job"


def test_an_empty_input_says_so(tmp_path, client):
    source = tmp_path / "in.jsonl"
    source.write_text("\n  \n")
    outcome, shown = batch(client, source, tmp_path / "out.jsonl")
    assert "in.jsonl is empty" in shown
    assert outcome.clean


def call(deployment: str, outcome: str) -> Attempt:
    return Attempt.model_validate(
        {
            "deployment": deployment,
            "provider": "openai",
            "model": "m",
            "outcome": outcome,
            "started_at": 0.0,
        }
    )


def test_the_summary_counts_retries_failovers_and_failures_by_class(tmp_path):
    tally = BatchTally()
    tally.count(
        CompletionResult(
            job_id="j1",
            state=JobState.SUCCEEDED,
            deployment="b",
            attempts=[call("a", "server_error"), call("a", "timeout"), call("b", "ok")],
        )
    )
    tally.count(
        CompletionResult(
            job_id="j2",
            state=JobState.FAILED,
            attempts=[call("a", "bad_request")],
            error=JobError(error_class="bad_request", message="no"),
        )
    )
    assert (tally.retries, tally.failovers) == (1, 1)
    assert dict(tally.failed_by_class) == {"bad_request": 1}
    plan = BatchPlan(todo=[], problems=[], succeeded_before=0, failed_before=0, lines=2)
    outcome = BatchOutcome(plan, tally, tmp_path / "out.jsonl", tmp_path / "out.errors.jsonl")
    second = summary_line(outcome).splitlines()[1]
    assert "1 retries, 1 failovers; failed by class: bad_request 1" in second
    assert second.split(" s;")[0].replace(".", "").isdigit(), "elapsed seconds first"


FAST = RedisPatience(budget_s=0.5, base_s=0.01, cap_s=0.02)


def test_redis_away_is_tried_again_until_it_answers():
    calls = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise SubmitError("could not store the job in Redis") from redis.ConnectionError("down")
        return "done"

    seen: list[BaseException] = []
    patience = dataclasses.replace(FAST, on_outage=seen.append)
    assert asyncio.run(patience.run(flaky)) == "done"
    assert len(calls) == 3
    assert len(seen) == 2


def test_redis_away_longer_than_the_budget_is_a_clear_error_naming_redis_not_its_password():
    url = "redis://user:s3cret-pw@10.1.2.3:6390/2"

    def down() -> None:
        raise redis.ConnectionError("Error 111 connecting to 10.1.2.3:6390 (s3cret-pw)")

    with pytest.raises(RedisUnavailable) as caught:
        FAST.call(down, what="could not store the job", url=url)
    message = str(caught.value)
    assert message.startswith("could not store the job: Redis at 10.1.2.3:6390/2 did not answer")
    assert "TURNOUT_REDIS_PATIENCE_S=0.5" in message
    assert "s3cret" not in message
    assert isinstance(caught.value.__cause__, redis.ConnectionError)
    assert not is_redis_outage(caught.value), "its patience is spent: nobody rides it out again"


def test_a_streak_is_timed_from_the_start_of_its_first_failed_try():
    patience = RedisPatience(budget_s=0.2, base_s=0.01, cap_s=0.01)
    tries = []

    def hangs_then_times_out() -> None:
        tries.append(1)
        time.sleep(0.25)  # a try that hung until its socket timeout counts whole
        raise redis.TimeoutError("Timeout reading from socket")

    with pytest.raises(RedisUnavailable):
        patience.call(hangs_then_times_out)
    assert tries == [1]


def test_other_errors_are_not_retried():
    calls = []

    async def wrong() -> None:
        calls.append(1)
        raise redis.ResponseError("WRONGTYPE")

    with pytest.raises(redis.ResponseError):
        asyncio.run(FAST.run(wrong))
    assert calls == [1]
    assert is_redis_outage(redis.BusyLoadingError("loading")), "a restarted Redis replaying AOF"
    assert is_redis_outage(redis.ReadOnlyError("READONLY")), "a failover's replica"
    assert not is_redis_outage(redis.AuthenticationError("invalid password")), "waiting won't fix"


def test_redis_location_names_host_port_and_db_and_never_credentials():
    assert redis_location("redis://:pw@cache.internal:6380/3") == "Redis at cache.internal:6380/3"
    assert redis_location("rediss://cache") == "Redis at cache:6379"
    assert redis_location("unix:///run/redis.sock") == "Redis at /run/redis.sock"
    assert (
        redacted("via redis://u:pw@h:1/0 pw", "redis://u:pw@h:1/0") == "via redis://***@h:1/0 ***"
    )


def test_redis_pys_torn_connection_counts_as_an_outage_and_our_own_attribute_errors_do_not():
    import asyncio

    from redis.asyncio.connection import Connection

    from producers.redis_patience import is_redis_outage

    torn = Connection()  # never connected: its writer is None, as after a disconnect mid-write
    with pytest.raises(AttributeError) as caught:
        asyncio.run(torn._send_packed_command([b"PING"]))
    assert is_redis_outage(caught.value)
    with pytest.raises(AttributeError) as ours:
        None.writelines  # type: ignore[attr-defined]  # noqa: B018
    assert not is_redis_outage(ours.value)
