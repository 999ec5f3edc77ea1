"""execute_job and the parameters a model refuses: fitted before the call, a refusal retried
once without the parameter and learnt, prefill passed over, no breaker moved. A scripted
provider that records what each call was sent, the real LocalRouter, a fake clock."""

from routing.capabilities import ASSISTANT_PREFILL
from routing.config import parse_config
from routing.errors import ErrorClass, UnsupportedParameter
from routing.local_router import LocalRouter
from routing.models import Attempt, CompletionRequest, JobState, Message, RoutingPolicy
from routing.planning import plan_candidates
from routing.request_fit import LocalLessons
from tests.workers.test_execution import OK, FakeClock
from workers.execution import execute_job

CONFIG = parse_config(
    {
        "deployments": [
            {"id": "o3", "provider": "openai", "model": "o3"},
            {"id": "4o", "provider": "openai", "model": "gpt-4o"},
            {"id": "sonnet-46", "provider": "anthropic", "model": "claude-sonnet-4-6"},
            {"id": "sonnet-45", "provider": "anthropic", "model": "claude-sonnet-4-5"},
        ],
        "breaker": {"consecutive_failures": 1, "cooldown_s": 30, "cooldown_jitter": 0},
    }
)
SAMPLED = CompletionRequest(
    messages=[Message(role="user", content="hi")], temperature=0.2, stop=["END"]
)
PREFILLED = CompletionRequest(
    messages=[Message(role="user", content="hi"), Message(role="assistant", content="{")]
)


def stop_refused():
    return UnsupportedParameter(
        "400 from openai: Unsupported parameter: 'stop' is not supported with this model.",
        status_code=400,
        param="stop",
    )


class Provider:
    """Answers from a script per deployment; records the request each call was sent."""

    def __init__(self, scripts):
        self.scripts = {k: list(v) for k, v in scripts.items()}
        self.sent = []

    def __call__(self, route, request, timeout_s):
        self.sent.append((route.deployment.id, request))
        outcome = self.scripts[route.deployment.id].pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def run(targets, scripts, request=SAMPLED, *, router=None, lessons=None, **policy):
    clock = FakeClock()
    router = router or LocalRouter(clock=clock.wall)
    provider = Provider(scripts)
    recorded: list[Attempt] = []
    routing = RoutingPolicy(targets=targets, retries_per_target=0, **policy)
    result = execute_job(
        request,
        routing,
        plan_candidates(routing, CONFIG),
        router=router,
        call=provider,
        record_attempts=recorded.extend,
        clock=clock.monotonic,
        now=clock.wall,
        sleep=clock.sleep,
        lessons=lessons,
    )
    if result.pending_record is not None:
        router.record(result.pending_record.grant, result.pending_record.outcome)
    return result, provider, [*recorded, *result.unrecorded], router


def test_what_the_table_says_the_model_refuses_is_never_sent():
    result, provider, attempts, _ = run(["o3"], {"o3": [OK]})
    assert result.state is JobState.SUCCEEDED
    ((_, sent),) = provider.sent
    assert (sent.temperature, sent.stop) == (None, None)
    assert attempts[0].message == (
        "dropped temperature: not accepted by o3; dropped stop: not accepted by o3"
    )


def test_a_refusal_is_retried_once_on_the_same_route_without_it_and_learnt():
    lessons = LocalLessons()
    result, provider, attempts, router = run(
        ["4o", "o3"], {"4o": [stop_refused(), OK], "o3": []}, lessons=lessons
    )
    assert result.state is JobState.SUCCEEDED
    assert result.route is not None
    assert result.route.deployment.id == "4o"
    assert [(d, r.stop) for d, r in provider.sent] == [("4o", ["END"]), ("4o", None)]
    assert [a.outcome for a in attempts] == ["unsupported_parameter", "ok"]
    assert "dropped stop: refused by gpt-4o" in (attempts[1].message or "")
    assert lessons.refused(CONFIG.deployments["4o"]).keys() == {"stop"}
    state = router.state_of("4o")
    assert state is None or (state.state, state.consecutive) == ("closed", 0), "no breaker moved"

    _, again, _, _ = run(["4o"], {"4o": [OK]}, lessons=lessons, router=router)
    ((_, sent),) = again.sent
    assert sent.stop is None, "the next job does not send what the model refused"
    assert sent.temperature == 0.2


def test_skip_passes_the_refusing_model_over_and_fail_fails_the_job():
    result, provider, attempts, _ = run(
        ["o3", "4o"], {"o3": [], "4o": [OK]}, unsupported_parameters="skip"
    )
    assert result.state is JobState.SUCCEEDED
    assert [d for d, _ in provider.sent] == ["4o"]
    assert (attempts[0].outcome, attempts[0].reason) == ("skipped", "unsupported_parameter")

    failed, provider, _, _ = run(
        ["o3", "4o"], {"o3": [], "4o": [OK]}, unsupported_parameters="fail"
    )
    assert failed.state is JobState.FAILED
    assert failed.error is not None
    assert failed.error.error_class is ErrorClass.UNSUPPORTED_PARAMETER
    assert provider.sent == []


def test_prefill_passes_a_refusing_model_over_to_one_that_continues_it():
    result, provider, attempts, _ = run(
        ["sonnet-46", "sonnet-45"], {"sonnet-46": [], "sonnet-45": [OK]}, request=PREFILLED
    )
    assert result.state is JobState.SUCCEEDED
    ((deployment, sent),) = provider.sent
    assert deployment == "sonnet-45"
    assert sent.messages[-1].role == "assistant", "the prefill is sent whole, never cut"
    assert attempts[0].reason == "unsupported_parameter"


def test_a_prefill_refusal_fails_over_and_is_learnt():
    lessons = LocalLessons()
    refusal = UnsupportedParameter("400: prefill", status_code=400, param=ASSISTANT_PREFILL)
    result, provider, _, _ = run(
        ["4o", "sonnet-45"],
        {"4o": [refusal], "sonnet-45": [OK]},
        request=PREFILLED,
        lessons=lessons,
    )
    assert result.state is JobState.SUCCEEDED
    assert [d for d, _ in provider.sent] == ["4o", "sonnet-45"]
    assert ASSISTANT_PREFILL in lessons.refused(CONFIG.deployments["4o"])


def test_no_target_that_takes_the_request_fails_as_unsupported_parameter():
    result, provider, _, _ = run(["sonnet-46"], {"sonnet-46": []}, request=PREFILLED)
    assert result.state is JobState.FAILED
    assert result.error is not None
    assert result.error.error_class is ErrorClass.UNSUPPORTED_PARAMETER
    assert "prefill" in result.error.message
    assert provider.sent == []
