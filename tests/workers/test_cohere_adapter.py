"""The Cohere v2 adapter without a server: the request it builds, how it reads replies and
errors, and the key probe."""

import json

import pytest
from pydantic import SecretStr

from routing.config import DeploymentConfig
from routing.errors import ErrorClass, ProviderError
from routing.models import CompletionRequest
from tests.providers.harness import settings
from workers.http import HttpReply
from workers.providers.cohere import CohereAdapter, classify_error, retry_after
from workers.providers.registry import build_adapter

REQUEST = CompletionRequest.model_validate(
    {
        "messages": [
            {"role": "system", "content": "be terse"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "again"},
        ],
        "max_tokens": 64,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": ["END"],
    }
)


def adapter(key="co-test-key-123456", base="https://api.cohere.example"):
    deployment = DeploymentConfig(id="co", provider="cohere", model="command-a-03-2025")
    return CohereAdapter(deployment, base_url=base, api_key=SecretStr(key) if key else None)


def reply(status, payload, headers=None):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return HttpReply(status, headers or {}, body, 0.01)


def chat_reply(**overrides):
    body = {
        "id": "c0ffee",
        "finish_reason": "COMPLETE",
        "message": {"role": "assistant", "content": [{"type": "text", "text": "Hello!"}]},
        "usage": {
            "billed_units": {"input_tokens": 5, "output_tokens": 2},
            "tokens": {"input_tokens": 70, "output_tokens": 2},
            "cached_tokens": 3,
        },
    }
    body.update(overrides)
    return reply(200, body)


def test_the_call_is_a_v2_chat_with_bearer_auth_and_the_sdk_field_names():
    call = adapter().build_call(REQUEST)
    assert (call.method, call.url) == ("POST", "https://api.cohere.example/v2/chat")
    assert call.headers["authorization"] == "Bearer co-test-key-123456"
    assert call.headers["content-type"] == "application/json"
    assert json.loads(call.body) == {
        "model": "command-a-03-2025",
        "messages": [
            {"role": "system", "content": "be terse"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "again"},
        ],
        "max_tokens": 64,
        "temperature": 0.2,
        "p": 0.9,
        "stop_sequences": ["END"],
        "stream": False,
    }
    assert "co-test-key-123456" not in repr(call)


def test_unset_options_are_left_out_and_top_p_is_clamped_to_cohere_range():
    bare = json.loads(adapter().build_call(CompletionRequest.from_prompt("hi")).body)
    assert bare == {
        "model": "command-a-03-2025",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": False,
    }
    for top_p, p in ((1.0, 0.99), (0.001, 0.01), (0.5, 0.5)):
        request = REQUEST.model_copy(update={"top_p": top_p})
        assert json.loads(adapter().build_call(request).body)["p"] == p


def test_from_settings_reads_the_key_and_base_variable_and_cuts_a_version_suffix():
    deployment = DeploymentConfig(id="co", provider="cohere", model="command-r")
    built = build_adapter(
        deployment, settings(COHERE_API_KEY="k-1", COHERE_BASE_URL="https://proxy.example/v2/")
    )
    assert isinstance(built, CohereAdapter)
    assert built.default_retries == 2  # cohere SDK's max_retries default
    call = built.build_call(REQUEST)
    assert call.url == "https://proxy.example/v2/chat"
    assert call.headers["authorization"] == "Bearer k-1"
    default = build_adapter(deployment, settings(COHERE_API_KEY="k-1")).build_call(REQUEST)
    assert default.url == "https://api.cohere.com/v2/chat"


def test_a_completion_joins_the_text_blocks_and_reports_billed_usage():
    completion = adapter().parse_reply(
        chat_reply(
            message={
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm"},
                    {"type": "text", "text": "Hel"},
                    {"type": "text", "text": "lo!"},
                ],
            }
        )
    )
    assert completion.text == "Hello!"
    assert (completion.finish_reason, completion.provider_finish_reason) == ("stop", "COMPLETE")
    assert completion.response_id == "c0ffee"
    assert completion.usage is not None
    assert completion.usage.model_dump() == {
        "prompt_tokens": 5,
        "completion_tokens": 2,
        "total_tokens": 7,
        "cached_tokens": 3,
    }


def test_usage_falls_back_to_raw_tokens_and_may_be_absent():
    raw_only = adapter().parse_reply(
        chat_reply(usage={"tokens": {"input_tokens": 70.0, "output_tokens": 2.0}})
    )
    assert raw_only.usage is not None
    assert (raw_only.usage.prompt_tokens, raw_only.usage.completion_tokens) == (70, 2)
    assert raw_only.usage.cached_tokens is None
    assert adapter().parse_reply(chat_reply(usage=None)).usage is None


@pytest.mark.parametrize(
    ("reason", "finish"),
    [
        ("COMPLETE", "stop"),
        ("STOP_SEQUENCE", "stop"),
        ("MAX_TOKENS", "length"),
        ("TOOL_CALL", "tool_calls"),
    ],
)
def test_finish_reasons(reason, finish):
    completion = adapter().parse_reply(chat_reply(finish_reason=reason))
    assert (completion.finish_reason, completion.provider_finish_reason) == (finish, reason)


def test_a_tool_call_reply_may_have_no_content():
    completion = adapter().parse_reply(
        chat_reply(finish_reason="TOOL_CALL", message={"role": "assistant", "tool_plan": "x"})
    )
    assert (completion.text, completion.finish_reason) == ("", "tool_calls")


@pytest.mark.parametrize(
    ("reason", "error_class"),
    [("ERROR", ErrorClass.SERVER_ERROR), ("TIMEOUT", ErrorClass.TIMEOUT)],
)
def test_a_generation_cohere_ended_itself_is_an_error(reason, error_class):
    with pytest.raises(ProviderError) as caught:
        adapter().parse_reply(chat_reply(finish_reason=reason))
    assert caught.value.error_class is error_class


@pytest.mark.parametrize(
    "body",
    [
        b'{"id": "x", "message": ',
        b"[]",
        json.dumps({"id": "x", "finish_reason": "COMPLETE"}).encode(),
        json.dumps({"message": {"content": "not blocks"}}).encode(),
        json.dumps({"message": {"content": [{"type": "text", "text": 5}]}}).encode(),
    ],
)
def test_a_body_that_is_not_a_v2_chat_reply_is_invalid(body):
    with pytest.raises(ProviderError) as caught:
        adapter().parse_reply(reply(200, body))
    assert caught.value.error_class is ErrorClass.INVALID_RESPONSE


@pytest.mark.parametrize(
    ("status", "message", "error_class"),
    [
        (400, "too many tokens: size limit exceeded by 11326 tokens.", ErrorClass.CONTEXT_LENGTH),
        (400, "invalid request: p must be between 0.01 and 0.99", ErrorClass.BAD_REQUEST),
        (401, "invalid api token", ErrorClass.AUTH),
        (402, "Please add a payment method", ErrorClass.PERMISSION),
        (403, "forbidden", ErrorClass.PERMISSION),
        (404, "model 'x' not found", ErrorClass.MODEL_NOT_FOUND),
        (422, "unprocessable", ErrorClass.BAD_REQUEST),
        (429, "You are past the per-minute request limit", ErrorClass.RATE_LIMITED),
        (
            429,
            "You are using a Trial key, which is limited to 1000 API calls / month.",
            ErrorClass.PERMISSION,
        ),
        (498, "invalid token", ErrorClass.AUTH),
        (499, "request cancelled", ErrorClass.SERVER_ERROR),
        (500, "internal server error", ErrorClass.SERVER_ERROR),
        (501, "not implemented", ErrorClass.INVALID_RESPONSE),
        (502, "bad gateway", ErrorClass.SERVER_ERROR),
        (503, "service unavailable", ErrorClass.OVERLOADED),
        (504, "timed out", ErrorClass.TIMEOUT),
        (405, "method not allowed", ErrorClass.INVALID_RESPONSE),
    ],
)
def test_error_classification(status, message, error_class):
    error = classify_error(status, json.dumps({"id": "e1", "message": message}).encode(), {})
    assert error.error_class is error_class
    assert error.status_code == status
    assert message in error.message


def test_error_bodies_that_are_not_cohere_shaped_still_classify():
    with pytest.raises(ProviderError) as caught:
        adapter().parse_reply(reply(502, b"<html>Bad Gateway</html>"))
    assert caught.value.error_class is ErrorClass.SERVER_ERROR
    assert "Bad Gateway" in caught.value.message


def test_retry_after_comes_from_the_headers_the_sdk_reads():
    assert retry_after({"retry-after": "3"}) == 3.0
    assert retry_after({"retry-after-ms": "1500", "x-ratelimit-reset": "999"}) == 1.5
    assert retry_after({"x-ratelimit-reset": "1010"}, now=lambda: 1000.0) == 10.0
    assert retry_after({"x-ratelimit-reset": "990"}, now=lambda: 1000.0) is None
    limited = classify_error(429, b"{}", {"retry-after": "7", "x-should-retry": "false"})
    assert (limited.retry_after_s, limited.should_retry) == (7.0, False)


def test_the_probe_checks_the_key_itself():
    probe = adapter().build_probe()
    assert (probe.method, probe.url, probe.body) == (
        "POST",
        "https://api.cohere.example/v1/check-api-key",
        b"",
    )
    assert probe.headers["authorization"] == "Bearer co-test-key-123456"
    assert "content-type" not in probe.headers
    adapter().read_probe(reply(200, {"valid": True, "organization_id": "o"}))


@pytest.mark.parametrize(
    ("status", "body", "error_class"),
    [
        (200, {"valid": False}, ErrorClass.AUTH),
        (200, {"organization_id": "o"}, ErrorClass.INVALID_RESPONSE),
        (200, b"not json", ErrorClass.INVALID_RESPONSE),
        (401, {"id": "e", "message": "invalid api token"}, ErrorClass.AUTH),
        (429, {"id": "e", "message": "slow down"}, ErrorClass.RATE_LIMITED),
    ],
)
def test_a_probe_that_does_not_prove_the_key_raises(status, body, error_class):
    with pytest.raises(ProviderError) as caught:
        adapter().read_probe(reply(status, body))
    assert caught.value.error_class is error_class


def test_without_a_key_no_authorization_is_sent():
    assert "authorization" not in adapter(key=None).build_call(REQUEST).headers
