"""A reply that is not the JSON its request's schema asks for is a failed attempt of its own
class: retried, then failed over, never moving a breaker; the policy can turn the check off."""

from __future__ import annotations

from routing.local_router import LocalRouter
from routing.models import Attempt, CompletionRequest, JobState, ProviderCompletion, RoutingPolicy
from routing.planning import plan_candidates
from tests.workers.test_execution import CONFIG, FakeClock, ScriptedProviders
from workers.execution import execute_job

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
REQUEST = CompletionRequest.model_validate(
    {
        "messages": [{"role": "user", "content": "count"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "c", "schema": SCHEMA}},
    }
)


def reply(text: str) -> ProviderCompletion:
    return ProviderCompletion(
        text=text, finish_reason="stop", provider_finish_reason="stop", usage=None
    )


def run(scripts, **policy_fields):
    clock = FakeClock()
    providers = ScriptedProviders(clock, scripts)
    router = LocalRouter(clock=clock.wall)
    recorded: list[Attempt] = []
    policy = RoutingPolicy(
        targets=list(scripts), retries_per_target=1, backoff_base_s=0.0, **policy_fields
    )
    plan = plan_candidates(policy, CONFIG, needs=[])  # CONFIG's models: capability not at stake
    result = execute_job(
        REQUEST,
        policy,
        plan,
        router=router,
        call=providers,
        record_attempts=recorded.extend,
        clock=clock.monotonic,
        now=clock.wall,
        sleep=clock.sleep,
    )
    return result, [*recorded, *result.unrecorded], router


def test_invalid_output_is_retried_then_fails_over_and_moves_no_breaker():
    result, attempts, router = run(
        {
            "primary": [reply("Sure! {n: 1}"), reply('{"n": "one"}')],
            "secondary": [reply('{"n": 1}')],
        }
    )
    assert result.state is JobState.SUCCEEDED
    assert [(a.deployment, a.outcome) for a in attempts] == [
        ("primary", "invalid_output"),
        ("primary", "invalid_output"),
        ("secondary", "ok"),
    ]
    assert "not JSON" in (attempts[0].message or "")
    assert result.outcome_fields()["parsed"] == {"n": 1}
    state = router.state_of("primary")
    assert state is None or (state.state, state.consecutive) == ("closed", 0)


def test_the_policy_can_turn_the_check_off():
    result, attempts, _ = run({"primary": [reply("not json")]}, check_output=False)
    assert result.state is JobState.SUCCEEDED
    assert result.outcome_fields()["parsed"] is None
    assert [a.outcome for a in attempts] == ["ok"]
