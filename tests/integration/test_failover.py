"""Ordered failover with real workers and simulators."""

import pytest

from routing.errors import ErrorClass, JobFailed
from routing.models import JobState


def test_a_503_primary_fails_over_and_every_attempt_is_logged(live):
    live.primary.set_faults(fail_rate=1.0, fail_status=503)
    with live.client() as client:
        result = client.complete("fail over please", timeout=30)
    assert result.state is JobState.SUCCEEDED
    assert result.deployment == "secondary"
    assert [(a.deployment, a.outcome, a.status_code) for a in result.attempts] == [
        ("primary", "overloaded", 503),
        ("primary", "overloaded", 503),
        ("secondary", "ok", 200),
    ]
    assert all(a.latency_ms > 0 for a in result.attempts)
    assert live.primary.chat_requests() == 2


def test_a_400_fails_fast_and_never_calls_the_secondary(live):
    live.primary.set_faults(fail_rate=1.0, fail_status=400)
    with live.client() as client, pytest.raises(JobFailed) as caught:
        client.complete("a request every provider would refuse", timeout=30)
    result = caught.value.result
    assert result.error is not None
    assert result.error.error_class is ErrorClass.BAD_REQUEST
    assert [(a.deployment, a.outcome, a.status_code) for a in result.attempts] == [
        ("primary", "bad_request", 400)
    ]
    assert live.secondary.chat_requests() == 0


def test_a_rate_limited_primary_is_retried_after_its_retry_after(live):
    live.primary.set_faults(fail_rate=1.0, fail_status=429, retry_after_s=0.3)
    with live.client() as client:
        result = client.complete("slow down", timeout=30)
    assert [(a.deployment, a.outcome, a.retry_after_s) for a in result.attempts] == [
        ("primary", "rate_limited", 0.3),
        ("primary", "rate_limited", 0.3),
        ("secondary", "ok", None),
    ]
    first, second = result.attempts[:2]
    assert second.started_at - first.started_at >= 0.3, "the retry waited for Retry-After"


def test_a_hanging_primary_times_out_and_fails_over(live):
    live.primary.set_faults(hang=True)
    policy = {
        "targets": ["primary", "secondary"],
        "attempt_timeout_s": 0.5,
        "retries_per_target": 0,
        "deadline_s": 8,
    }
    with live.client() as client:
        result = client.complete("are you there?", policy=policy, timeout=30)
    assert [(a.deployment, a.outcome) for a in result.attempts] == [
        ("primary", "timeout"),
        ("secondary", "ok"),
    ]


def test_a_malformed_answer_is_invalid_response_not_a_crash(live):
    live.primary.set_faults(malformed=True)
    with live.client() as client:
        result = client.complete("garbled", timeout=30)
    assert [(a.deployment, a.outcome) for a in result.attempts] == [
        ("primary", "invalid_response"),
        ("secondary", "ok"),
    ]
