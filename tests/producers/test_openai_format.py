"""OpenAI's request, response and error shapes at turnout's edge."""

import pytest
from pydantic import ValidationError

from producers.http_front.schemas import TurnoutFacts
from producers.openai_format import (
    ChatCompletionRequest,
    Route,
    UnknownModel,
    chat_completion,
    failed_job_body,
    failure_of,
    route_of,
)
from routing.config import parse_config
from routing.errors import ErrorClass, InvalidRequest
from routing.models import Attempt, CompletionResult, JobError, JobState

CONFIG = parse_config(
    {
        "deployments": [{"id": "primary", "provider": "openai", "model": "gpt-4o-mini"}],
        "aliases": {"small": ["primary"]},
        "policies": {"default": {"targets": ["primary"]}},
    }
)


def chat(**fields):
    return ChatCompletionRequest.model_validate(
        {"model": "default", "messages": [{"role": "user", "content": "Hi"}], **fields}
    )


def test_openai_message_forms_become_turnout_messages():
    request = chat(
        messages=[
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": t} for t in ("One", "Two")]},
        ],
        max_tokens=10,
        max_completion_tokens=20,
        stop="END",
    ).to_completion_request(idempotency_key="k-1")
    assert [(m.role, m.content) for m in request.messages] == [
        ("system", "Be brief."),
        ("user", "One\nTwo"),
    ]
    assert request.max_tokens == 20, "max_completion_tokens wins"
    assert request.stop == ["END"]
    assert request.idempotency_key == "k-1"


def test_what_turnout_cannot_honour_is_refused_not_dropped():
    with pytest.raises(InvalidRequest, match="streaming is not supported"):
        chat(stream=True).to_completion_request()
    for field, value in [("n", 2), ("response_format", {"type": "json_schema"})]:
        with pytest.raises(ValidationError):
            chat(**{field: value})
    with pytest.raises(InvalidRequest, match="tools"):
        chat(tools=[]).to_completion_request()
    with pytest.raises(ValidationError):
        chat(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}])
    with pytest.raises(ValidationError):
        chat(messages=[{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}])
    with pytest.raises(InvalidRequest, match="at least one user or assistant"):
        chat(messages=[{"role": "system", "content": "only"}]).to_completion_request()


def test_model_names_a_policy_a_deployment_or_an_alias():
    assert route_of(CONFIG, "default") == Route(policy="default")
    assert route_of(CONFIG, "primary") == Route(targets=("primary",))
    assert route_of(CONFIG, "small") == Route(targets=("small",))
    with pytest.raises(UnknownModel, match=r"'gpt-5' does not exist.*default, primary, small"):
        route_of(CONFIG, "gpt-5")


def test_a_succeeded_job_is_a_chat_completion():
    body = chat_completion(
        CompletionResult(
            job_id="j1",
            state=JobState.SUCCEEDED,
            text="Hello",
            finish_reason="length",
            deployment="primary",
            provider="openai",
            model="gpt-4o-mini-2024-07-18",
            cost_usd=0.00001,
            runs=1,
        )
    )
    assert body["id"] == "chatcmpl-j1"
    assert body["model"] == "gpt-4o-mini-2024-07-18", "the model that served it"
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"] is None
    assert body["turnout"] == {
        "job_id": "j1",
        "deployment": "primary",
        "provider": "openai",
        "cost_usd": 0.00001,
        "calls": 0,
        "runs": 1,
        "attempts": [],
    }


def _attempt(deployment: str, outcome: str, **fields: object) -> Attempt:
    return Attempt(
        deployment=deployment,
        provider="openai",
        model="m",
        outcome=outcome,
        started_at=1.0,
        **fields,
    )


def test_turnouts_attempts_are_the_attempt_log_of_show_json_and_calls_count_provider_calls():
    result = CompletionResult(
        job_id="j3",
        state=JobState.SUCCEEDED,
        text="Hi",
        deployment="backup",
        runs=1,
        attempts=[
            _attempt("primary", "skipped", reason="open"),
            _attempt("secondary", "server_error", status_code=503),
            _attempt("backup", "ok", status_code=200),
        ],
    )
    facts = chat_completion(result)["turnout"]
    assert facts["attempts"] == result.to_json_dict()["attempts"], "the same list, not a count"
    assert facts["calls"] == 2, "the skipped target was not a call"
    TurnoutFacts.model_validate(facts)

    failed = result.model_copy(
        update={
            "state": JobState.FAILED,
            "error": JobError(error_class=ErrorClass.SERVER_ERROR, message="why"),
            "attempts": result.attempts[:2],
        }
    )
    _, body = failed_job_body(failed)
    assert body["turnout"]["attempts"] == failed.to_json_dict()["attempts"]
    assert body["turnout"]["calls"] == 1


@pytest.mark.parametrize(
    ("error_class", "status", "type_"),
    [
        (ErrorClass.BAD_REQUEST, 400, "invalid_request_error"),
        (ErrorClass.CONTEXT_LENGTH, 400, "invalid_request_error"),
        (ErrorClass.UNSUPPORTED_PARAMETER, 400, "invalid_request_error"),
        (ErrorClass.RATE_LIMITED, 429, "rate_limit_error"),
        (ErrorClass.ALL_UNAVAILABLE, 503, "service_unavailable"),
        (ErrorClass.DEADLINE_EXCEEDED, 504, "timeout_error"),
        (ErrorClass.AUTH, 502, "upstream_error"),
        (ErrorClass.SERVER_ERROR, 502, "upstream_error"),
        (ErrorClass.INTERNAL, 500, "server_error"),
    ],
)
def test_a_failed_jobs_class_decides_its_status(error_class, status, type_):
    failure = failure_of(error_class)
    assert (failure.status, failure.type) == (status, type_)
    result = CompletionResult(
        job_id="j2", state=JobState.FAILED, error=JobError(error_class=error_class, message="why")
    )
    got_status, body = failed_job_body(result)
    assert got_status == status
    assert body["error"]["message"] == "why"
    assert set(body["error"]) == {"message", "type", "param", "code"}
