"""A route's retry budget holds across reschedules, through a real worker: a Retry-After longer
than a worker slot is held (2 s) releases the job to the queue, and its next run, on whatever
worker, goes on from what the earlier runs spent (the job record carries it), for a 429 and a
503 alike. The simulators answer with the status and the Retry-After (ops/simulator/faults.py);
the attempt log's ``run`` is the delivery each call was made in."""

from __future__ import annotations

import uuid
from itertools import pairwise

import pytest

from routing.errors import ErrorClass
from routing.models import CompletionResult, JobState
from tests.integration.conftest import Stack, tear_down
from tests.integration.harness import Sim, Worker, stack_env, write_config


@pytest.fixture(scope="module")
def stack(redis_url, tmp_path_factory):
    """Two simulators, a breaker that stays closed through a whole budget of failures (what
    bounds the calls is the budget), one worker."""
    directory = tmp_path_factory.mktemp("retry-budget")
    namespace = f"t-{uuid.uuid4().hex[:10]}"
    primary = Sim("primary", key=f"sim-primary-{uuid.uuid4().hex}")
    secondary = Sim("secondary", key=f"sim-secondary-{uuid.uuid4().hex}")
    config = write_config(
        directory / "turnout.yaml",
        [primary, secondary],
        breaker={"consecutive_failures": 20, "cooldown_jitter": 0},
    )
    # A visibility timeout that lets a job have a 30 s deadline (routing.celery_config).
    env = stack_env(
        redis_url, namespace, config, [primary, secondary], TURNOUT_VISIBILITY_TIMEOUT="60"
    )
    running = Stack(
        namespace,
        env,
        config,
        primary,
        secondary,
        Worker(env, directory / "worker.log").start(),
        redis_url,
    )
    yield running
    tear_down(running)


@pytest.fixture
def live(stack):
    stack.primary.reset()
    stack.secondary.reset()
    stack.reset_routes()
    yield stack
    stack.primary.reset()
    stack.secondary.reset()


def calls(result: CompletionResult) -> list[tuple[str, str, int]]:
    return [(a.deployment, str(a.outcome), a.run) for a in result.provider_calls]


def test_a_429_with_a_long_retry_after_gets_its_budget_across_reschedules_and_no_more(live):
    live.secondary.set_faults(fail_rate=1.0, fail_status=429, retry_after_s=3)
    policy = {"targets": ["secondary"], "retries_per_target": 2, "deadline_s": 30}
    with live.client() as client:
        result = client.submit("slow down?", policy=policy).wait(60)
    assert live.secondary.chat_requests() == 3, "1 call and its 2 retries (before: 10)"
    assert calls(result) == [
        ("secondary", "rate_limited", 1),
        ("secondary", "rate_limited", 2),
        ("secondary", "rate_limited", 3),
    ], "one call per delivery: each Retry-After released the job"
    assert all(a.retry_after_s == 3 for a in result.provider_calls)
    assert result.runs == 3
    assert result.state is JobState.FAILED
    assert result.error is not None
    assert result.error.error_class is ErrorClass.RATE_LIMITED, "not all_unavailable"
    assert "last: secondary (3 of 3 calls, Retry-After 3s)" in result.error.message
    starts = [a.started_at for a in result.provider_calls]
    assert all(later - earlier >= 2.9 for earlier, later in pairwise(starts))


def test_a_503_with_a_long_retry_after_is_retried_as_the_policy_says(live):
    live.primary.set_faults(fail_rate=1.0, fail_status=503, retry_after_s=3)
    policy = {"targets": ["primary"], "retries_per_target": 3, "deadline_s": 30}
    with live.client() as client:
        result = client.submit("busy?", policy=policy).wait(60)
    assert live.primary.chat_requests() == 4, "1 call and its 3 retries (before: 1)"
    assert calls(result) == [("primary", "overloaded", run) for run in (1, 2, 3, 4)]
    assert result.state is JobState.FAILED
    assert result.error is not None
    assert result.error.error_class is ErrorClass.OVERLOADED
    assert "last: primary (4 of 4 calls, Retry-After 3s)" in result.error.message
    starts = [a.started_at for a in result.provider_calls]
    assert all(later - earlier >= 2.9 for earlier, later in pairwise(starts))


def test_a_503_with_a_long_retry_after_fails_over_at_once_and_the_route_waits(live):
    live.primary.set_faults(
        fail_rate=1.0, fail_status=503, retry_after_s=20
    )  # long: the next job comes well within it
    policy = {"targets": ["primary", "secondary"], "retries_per_target": 3, "deadline_s": 30}
    with live.client() as client:
        result = client.submit("someone else?", policy=policy).wait(60)
        assert result.state is JobState.SUCCEEDED
        assert calls(result) == [("primary", "overloaded", 1), ("secondary", "ok", 1)]
        after = client.submit("and now?", policy=policy).wait(60)
    assert after.state is JobState.SUCCEEDED
    assert [(a.deployment, a.outcome, a.reason) for a in after.attempts[:1]] == [
        ("primary", "skipped", "cooling")
    ], "the 503's Retry-After keeps the next job away from it too"
    assert live.primary.chat_requests() == 1


def test_a_retry_after_that_would_end_past_the_deadline_ends_the_job_with_its_class(live):
    live.primary.set_faults(fail_rate=1.0, fail_status=503, retry_after_s=3)
    policy = {"targets": ["primary"], "retries_per_target": 3, "deadline_s": 9}
    with live.client() as client:
        result = client.submit("busy, and in a hurry?", policy=policy).wait(60)
    assert live.primary.chat_requests() == 3, "at 0, 3 and 6 s or later: a 4th, at 9, is past it"
    assert result.error is not None
    assert result.error.error_class is ErrorClass.OVERLOADED, "not all_unavailable"
    assert "last: primary (3 of 4 calls, Retry-After 3s, past the deadline)" in (
        result.error.message
    )
