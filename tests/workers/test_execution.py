"""The retry and failover rules of execute_job, with a scripted provider and a fake clock."""

from collections import defaultdict

import pytest

from routing.config import parse_config
from routing.errors import (
    AuthFailed,
    BadRequest,
    ConnectionFailed,
    ErrorClass,
    Overloaded,
    RateLimited,
    ServerError,
)
from routing.models import (
    Attempt,
    CompletionRequest,
    JobState,
    ProviderCompletion,
    RoutingPolicy,
    Usage,
)
from routing.planning import plan_candidates
from workers.execution import execute_job

CONFIG = parse_config(
    {
        "deployments": [
            {
                "id": "primary",
                "provider": "openai",
                "model": "gpt-4o-mini",
                "input_cost_per_mtok": 1.0,
                "output_cost_per_mtok": 2.0,
            },
            {"id": "secondary", "provider": "groq", "model": "llama"},
            {"id": "tertiary", "provider": "mistral", "model": "small"},
        ]
    }
)
REQUEST = CompletionRequest.from_prompt("hi")
OK = ProviderCompletion(
    text="hello",
    finish_reason="stop",
    provider_finish_reason="stop",
    usage=Usage(prompt_tokens=1000, completion_tokens=500, total_tokens=1500),
)


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


class ScriptedProviders:
    """Each deployment answers from its script, in order; each call takes ``call_s``."""

    def __init__(self, clock, scripts, call_s=0.1):
        self.clock = clock
        self.scripts = {k: list(v) for k, v in scripts.items()}
        self.calls = defaultdict(int)
        self.timeouts = []
        self.call_s = call_s

    def __call__(self, deployment, request, timeout_s):
        self.calls[deployment.id] += 1
        self.timeouts.append(timeout_s)
        self.clock.now += self.call_s
        outcome = self.scripts[deployment.id].pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def run(scripts, *, call_s=0.1, **policy_fields):
    clock = FakeClock()
    providers = ScriptedProviders(clock, scripts, call_s)
    recorded: list[Attempt] = []
    policy = RoutingPolicy(
        targets=list(scripts),
        **{"backoff_base_s": 1.0, "backoff_max_s": 8.0, "retries_per_target": 1, **policy_fields},
    )
    result = execute_job(
        REQUEST,
        policy,
        plan_candidates(policy, CONFIG),
        call=providers,
        record_attempt=recorded.append,
        redact=lambda text: text.replace("s3cret", "[redacted]"),
        clock=clock.monotonic,
        now=lambda: 1_700_000_000.0 + clock.now,
        sleep=clock.sleep,
    )
    return result, providers, recorded, clock


def outcomes(result, recorded):
    return [(a.deployment, a.outcome) for a in [*recorded, *result.unrecorded]]


def test_first_try_success_records_one_attempt_with_the_finish():
    result, _, recorded, _ = run({"primary": [OK], "secondary": []})
    assert result.state is JobState.SUCCEEDED
    assert recorded == [], "the only attempt rides along with the finish"
    assert outcomes(result, recorded) == [("primary", "ok")]
    fields = result.outcome_fields()
    assert (fields["deployment"], fields["provider"], fields["text"]) == (
        "primary",
        "openai",
        "hello",
    )
    assert fields["cost_usd"] == pytest.approx((1000 * 1.0 + 500 * 2.0) / 1e6)


def test_transient_errors_retry_then_fail_over():
    result, _providers, recorded, clock = run(
        {"primary": [Overloaded("503", status_code=503)] * 2, "secondary": [OK]}
    )
    assert result.state is JobState.SUCCEEDED
    assert result.deployment is not None
    assert result.deployment.id == "secondary"
    assert outcomes(result, recorded) == [
        ("primary", "overloaded"),
        ("primary", "overloaded"),
        ("secondary", "ok"),
    ]
    assert [a.status_code for a in recorded] == [503, 503]
    (backoff,) = clock.sleeps
    assert 0 <= backoff <= 1.0, "one backoff, full jitter"


def test_bad_request_fails_the_job_without_trying_anyone_else():
    result, providers, _recorded, clock = run(
        {"primary": [BadRequest("400: messages too short", status_code=400)], "secondary": [OK]}
    )
    assert result.state is JobState.FAILED
    assert result.error is not None
    assert result.error.error_class is ErrorClass.BAD_REQUEST
    assert providers.calls["secondary"] == 0
    assert clock.sleeps == []


def test_auth_errors_fail_over_at_once_without_retrying():
    result, providers, _, clock = run(
        {"primary": [AuthFailed("401", status_code=401)], "secondary": [OK]}
    )
    assert result.state is JobState.SUCCEEDED
    assert providers.calls["primary"] == 1
    assert clock.sleeps == []


def test_retry_after_is_honoured_exactly():
    result, _, recorded, clock = run(
        {"primary": [RateLimited("429", status_code=429, retry_after_s=2.0), OK]}
    )
    assert result.state is JobState.SUCCEEDED
    assert clock.sleeps == [2.0]
    assert recorded[0].retry_after_s == 2.0


def test_a_retry_after_longer_than_the_cap_fails_over_instead_of_waiting():
    result, providers, _, clock = run(
        {"primary": [RateLimited("429", retry_after_s=120.0)], "secondary": [OK]},
        retry_after_max_s=60,
    )
    assert result.state is JobState.SUCCEEDED
    assert (providers.calls["primary"], clock.sleeps) == (1, [])


def test_the_provider_saying_do_not_retry_is_obeyed():
    result, providers, _, clock = run(
        {"primary": [ServerError("500", should_retry=False)], "secondary": [OK]}
    )
    assert (providers.calls["primary"], clock.sleeps, result.state) == (1, [], JobState.SUCCEEDED)


def test_backoff_grows_exponentially_and_is_capped():
    errors = [ConnectionFailed("refused")] * 6
    result, _, _, clock = run(
        {"primary": [*errors, OK]}, retries_per_target=6, backoff_base_s=1.0, backoff_max_s=4.0
    )
    assert result.state is JobState.SUCCEEDED
    ceilings = [1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
    assert all(0 <= s <= c for s, c in zip(clock.sleeps, ceilings, strict=True))


def test_when_every_target_fails_the_job_fails_with_the_last_class():
    result, _, recorded, _ = run(
        {
            "primary": [AuthFailed("401 bad key s3cret")],
            "secondary": [ServerError("500 boom")] * 2,
        }
    )
    assert result.state is JobState.FAILED
    assert result.error is not None
    assert result.error.error_class is ErrorClass.SERVER_ERROR
    assert "all 2 targets failed" in result.error.message
    assert len(recorded) + len(result.unrecorded) == 3, "every attempt is in the log"
    assert recorded[0].message == "401 bad key [redacted]", "attempt messages are redacted"


def test_nothing_runs_past_the_deadline():
    result, providers, _recorded, clock = run(
        {"primary": [ServerError("500")] * 10, "secondary": [OK]},
        call_s=3.0,
        deadline_s=5.0,
        retries_per_target=10,
        backoff_base_s=0.5,
    )
    assert result.state is JobState.FAILED
    assert result.error is not None
    assert result.error.error_class is ErrorClass.DEADLINE_EXCEEDED
    assert clock.now <= 5.0 + 3.0, "the last attempt was capped by the remaining time"
    assert providers.timeouts[-1] <= 5.0 - 3.0 + 1e-9


def test_attempt_timeout_is_the_smaller_of_its_own_and_the_time_left():
    _, providers, _, _ = run({"primary": [OK]}, attempt_timeout_s=60, deadline_s=10)
    assert providers.timeouts == [10.0]


def test_no_configured_target_fails_with_no_candidates():
    clock = FakeClock()
    policy = RoutingPolicy(targets=["gone"])
    result = execute_job(
        REQUEST,
        policy,
        plan_candidates(policy, CONFIG),
        call=ScriptedProviders(clock, {}),
        record_attempt=lambda a: None,
        clock=clock.monotonic,
        sleep=clock.sleep,
    )
    assert result.error is not None
    assert result.error.error_class is ErrorClass.NO_CANDIDATES
    assert "gone" in result.error.message


def test_attempts_are_written_before_the_next_one_starts():
    written_before_call = []
    clock = FakeClock()
    recorded: list[Attempt] = []
    providers = ScriptedProviders(clock, {"primary": [Overloaded("503")] * 2, "secondary": [OK]})

    def call(deployment, request, timeout):
        written_before_call.append(len(recorded))
        return providers(deployment, request, timeout)

    policy = RoutingPolicy(targets=["primary", "secondary"])
    execute_job(
        REQUEST,
        policy,
        plan_candidates(policy, CONFIG),
        call=call,
        record_attempt=recorded.append,
        clock=clock.monotonic,
        sleep=clock.sleep,
    )
    assert written_before_call == [0, 1, 2]


def test_without_a_policy_retry_count_each_provider_gets_its_own():
    clock = FakeClock()
    providers = ScriptedProviders(
        clock, {"primary": [Overloaded("503")] * 4, "secondary": [Overloaded("503")] * 2 + [OK]}
    )
    policy = RoutingPolicy(targets=["primary", "secondary"])
    result = execute_job(
        REQUEST,
        policy,
        plan_candidates(policy, CONFIG),
        call=providers,
        record_attempt=lambda a: None,
        clock=clock.monotonic,
        sleep=clock.sleep,
        retries_for=lambda deployment: {"primary": 3, "secondary": 2}[deployment.id],
    )
    assert result.state is JobState.SUCCEEDED
    assert (providers.calls["primary"], providers.calls["secondary"]) == (4, 3)
