import pytest
from pydantic import ValidationError

from routing.errors import ErrorClass
from routing.models import (
    CompletionRequest,
    CompletionResult,
    JobError,
    JobState,
    Message,
    RoutingPolicy,
)


def request(**fields):
    return CompletionRequest.model_validate(
        {"messages": [{"role": "user", "content": "hi"}], **fields}
    )


def test_a_prompt_becomes_system_and_user_messages():
    req = CompletionRequest.from_prompt("hello", system="be terse", max_tokens=5)
    assert [m.role for m in req.messages] == ["system", "user"]
    assert req.max_tokens == 5


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"messages": []}, "at least 1"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "role"),
        ({"messages": [{"role": "user", "content": "   "}]}, "blank"),
        ({"messages": [{"role": "system", "content": "only rules"}]}, "user or assistant"),
        ({"max_tokens": -1}, "greater than 0"),
        ({"max_tokens": 0}, "greater than 0"),
        ({"temperature": 3}, "less than or equal to 2"),
        ({"top_p": 0}, "greater than 0"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "at most 4"),
        ({"idempotency_key": "has space"}, "pattern"),
        ({"frequency": 1}, "Extra inputs"),
    ],
)
def test_bad_requests_are_refused_with_a_reason(fields, complaint):
    with pytest.raises(ValidationError, match=complaint):
        request(**fields)


def test_a_single_stop_string_is_a_list():
    assert request(stop="END").stop == ["END"]


def test_policy_defaults_and_duplicate_targets():
    policy = RoutingPolicy(targets=["a", "b"])
    assert (policy.strategy, policy.retries_per_target) == ("ordered", None)
    assert policy.deadline_s > policy.attempt_timeout_s
    with pytest.raises(ValidationError, match="listed twice: a"):
        RoutingPolicy(targets=["a", "b", "a"])


def test_result_json_uses_the_contract_names():
    result = CompletionResult(
        job_id="j1",
        state=JobState.FAILED,
        error=JobError(error_class=ErrorClass.BAD_REQUEST, message="nope"),
    )
    data = result.to_json_dict()
    assert data["error"] == {"class": "bad_request", "message": "nope"}
    for key in (
        "job_id",
        "state",
        "text",
        "deployment",
        "provider",
        "model",
        "usage",
        "cost_usd",
        "attempts",
    ):
        assert key in data


def test_messages_are_immutable():
    message = Message(role="user", content="hi")
    with pytest.raises(ValidationError):
        message.content = "changed"  # type: ignore[misc]
