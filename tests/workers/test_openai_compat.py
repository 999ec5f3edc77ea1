import json

import pytest
from pydantic import SecretStr

from routing.config import DeploymentConfig
from routing.errors import ErrorClass, ProviderError, UnsupportedParameter
from routing.models import CompletionRequest
from workers.http import HttpReply
from workers.providers.openai_compat import (
    OpenAICompatibleAdapter,
    classify_error,
    parse_chat_completion,
)


def adapter(provider="openai", key="test-key-123456", headers=None, base="https://api.example/v1"):
    deployment = DeploymentConfig(id="d1", provider=provider, model="m-1")
    return OpenAICompatibleAdapter(
        deployment,
        base_url=base,
        api_key=SecretStr(key) if key else None,
        extra_headers=headers,
    )


REQUEST = CompletionRequest.model_validate(
    {
        "messages": [
            {"role": "system", "content": "be terse"},
            {"role": "user", "content": "hi"},
        ],
        "max_tokens": 64,
        "temperature": 0.2,
        "stop": ["\n\n"],
    }
)


def test_openai_call_uses_bearer_auth_and_max_completion_tokens():
    call = adapter().build_call(REQUEST)
    assert (call.method, call.url) == ("POST", "https://api.example/v1/chat/completions")
    assert call.headers["authorization"] == "Bearer test-key-123456"
    body = json.loads(call.body)
    assert body == {
        "model": "m-1",
        "messages": [
            {"role": "system", "content": "be terse"},
            {"role": "user", "content": "hi"},
        ],
        "max_completion_tokens": 64,
        "temperature": 0.2,
        "stop": ["\n\n"],
    }


def test_compatible_providers_get_max_tokens():
    body = json.loads(adapter("groq").build_call(REQUEST).body)
    assert body["max_tokens"] == 64
    assert "max_completion_tokens" not in body


def test_a_keyless_local_server_gets_no_authorization_header():
    call = adapter("ollama", key=None).build_call(REQUEST)
    assert "authorization" not in call.headers


def test_extra_headers_are_sent_and_the_key_stays_out_of_repr():
    call = adapter("openrouter", headers={"HTTP-Referer": "https://app.example"}).build_call(
        REQUEST
    )
    assert call.headers["HTTP-Referer"] == "https://app.example"
    assert "test-key-123456" not in repr(call)


def completion(**overrides):
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "m-1-2024",
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Hi"}}
        ],
        "usage": {
            "prompt_tokens": 12,
            "completion_tokens": 3,
            "total_tokens": 15,
            "prompt_tokens_details": {"cached_tokens": 4},
        },
    }
    body.update(overrides)
    return json.dumps(body).encode()


def test_a_success_keeps_text_usage_and_the_served_model():
    result = parse_chat_completion(completion())
    assert (result.text, result.finish_reason, result.model) == ("Hi", "stop", "m-1-2024")
    assert result.usage is not None
    assert (result.usage.prompt_tokens, result.usage.cached_tokens) == (12, 4)


def test_deepseek_keep_alive_blank_lines_before_the_body_are_fine():
    assert parse_chat_completion(b"\n\n\n" + completion()).text == "Hi"


def test_deepseek_cache_hits_count_as_cached_tokens():
    usage = {"prompt_tokens": 10, "completion_tokens": 1, "prompt_cache_hit_tokens": 7}
    result = parse_chat_completion(completion(usage=usage))
    assert result.usage is not None
    assert (result.usage.cached_tokens, result.usage.total_tokens) == (7, 11)


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"finish_reason": "length", "message": {"content": "Hi"}}, "length"),
        ({"finish_reason": "model_length", "message": {"content": "Hi"}}, "length"),
        ({"finish_reason": "tool_calls", "message": {"content": None}}, "tool_calls"),
    ],
)
def test_finish_reasons_are_normalised_and_the_original_kept(choice, expected):
    result = parse_chat_completion(completion(choices=[choice]))
    assert result.finish_reason == expected
    assert result.provider_finish_reason == choice["finish_reason"]


@pytest.mark.parametrize(
    ("body", "error_class"),
    [
        (
            completion(choices=[{"finish_reason": "content_filter", "message": {"content": None}}]),
            ErrorClass.CONTENT_POLICY,
        ),
        (
            completion(
                choices=[
                    {
                        "finish_reason": "stop",
                        "message": {"content": None, "refusal": "I can't help"},
                    }
                ]
            ),
            ErrorClass.CONTENT_POLICY,
        ),
        (
            completion(
                choices=[
                    {"finish_reason": "insufficient_system_resource", "message": {"content": "par"}}
                ]
            ),
            ErrorClass.OVERLOADED,
        ),
        (b'{"id": "x", "choices": [', ErrorClass.INVALID_RESPONSE),
        (b"<html>gateway</html>", ErrorClass.INVALID_RESPONSE),
        (completion(choices=[]), ErrorClass.INVALID_RESPONSE),
        (completion(choices=[{"message": {"content": 42}}]), ErrorClass.INVALID_RESPONSE),
        (
            completion(choices=[{"finish_reason": "error", "message": {"content": "half"}}]),
            ErrorClass.SERVER_ERROR,
        ),
    ],
)
def test_200_responses_that_are_not_a_completion(body, error_class):
    with pytest.raises(ProviderError) as caught:
        parse_chat_completion(body)
    assert caught.value.error_class is error_class


def openai_error(message, code=None, kind="invalid_request_error"):
    return json.dumps(
        {"error": {"message": message, "type": kind, "param": None, "code": code}}
    ).encode()


@pytest.mark.parametrize(
    ("provider", "status", "body", "expected"),
    [
        (
            "openai",
            400,
            openai_error("too long", "context_length_exceeded"),
            ErrorClass.CONTEXT_LENGTH,
        ),
        ("openai", 400, openai_error("'messages' is too short"), ErrorClass.BAD_REQUEST),
        ("azure", 400, openai_error("filtered", "content_filter"), ErrorClass.CONTENT_POLICY),
        (
            "openai",
            401,
            openai_error("Incorrect API key provided", "invalid_api_key"),
            ErrorClass.AUTH,
        ),
        (
            "xai",
            400,
            b'{"code": "invalid-argument", "error": "Incorrect API key provided: xa***"}',
            ErrorClass.AUTH,
        ),
        (
            "xai",
            400,
            b'{"code": "invalid-argument", "error": "bad temperature"}',
            ErrorClass.BAD_REQUEST,
        ),
        ("openai", 403, openai_error("Country not supported"), ErrorClass.PERMISSION),
        (
            "together",
            403,
            openai_error("input token count + max_tokens must be less than the context length"),
            ErrorClass.CONTEXT_LENGTH,
        ),
        (
            "openrouter",
            403,
            b'{"error": {"code": 403, "message": "Input was flagged by moderation",'
            b' "metadata": {"reasons": ["violence"]}}}',
            ErrorClass.CONTENT_POLICY,
        ),
        (
            "openai",
            404,
            openai_error("no such model", "model_not_found"),
            ErrorClass.MODEL_NOT_FOUND,
        ),
        ("deepseek", 402, b'{"error": {"message": "Insufficient Balance"}}', ErrorClass.PERMISSION),
        ("openai", 429, openai_error("quota", "insufficient_quota"), ErrorClass.PERMISSION),
        (
            "openai",
            429,
            openai_error("Rate limit", "rate_limit_exceeded", "requests"),
            ErrorClass.RATE_LIMITED,
        ),
        ("groq", 413, openai_error("Request Entity Too Large"), ErrorClass.CONTEXT_LENGTH),
        ("groq", 498, openai_error("capacity", "capacity_exceeded"), ErrorClass.OVERLOADED),
        (
            "openai",
            500,
            openai_error("The server had an error", None, "server_error"),
            ErrorClass.SERVER_ERROR,
        ),
        (
            "openrouter",
            502,
            b'{"error": {"code": 502, "message": "model down"}}',
            ErrorClass.SERVER_ERROR,
        ),
        ("openai", 503, openai_error("overloaded", None, "server_error"), ErrorClass.OVERLOADED),
        ("openai", 504, b"upstream timeout", ErrorClass.TIMEOUT),
        ("openrouter", 408, b'{"error": {"code": 408, "message": "timeout"}}', ErrorClass.TIMEOUT),
        ("vllm", 401, b'{"error": "Unauthorized"}', ErrorClass.AUTH),
        (
            "mistral",
            422,
            b'{"object": "error", "message": "bad", "type": "invalid_request_error"}',
            ErrorClass.BAD_REQUEST,
        ),
        (
            "mistral",
            429,
            b'{"object": "error", "message": "Rate limit exceeded", "code": "1300"}',
            ErrorClass.RATE_LIMITED,
        ),
    ],
)
def test_error_statuses_map_to_one_class_each(provider, status, body, expected):
    error = classify_error(provider, status, body, {})
    assert error.error_class is expected
    assert error.status_code == status
    assert str(status) in error.message


def test_the_error_message_and_code_come_from_the_body():
    error = classify_error(
        "openai", 404, openai_error("The model `x` does not exist", "model_not_found"), {}
    )
    assert "The model `x` does not exist" in error.message
    assert error.provider_code == "model_not_found"


def test_rate_limit_carries_retry_after_and_should_retry():
    error = classify_error(
        "openai", 429, openai_error("slow down"), {"retry-after": "7", "x-should-retry": "false"}
    )
    assert (error.retry_after_s, error.should_retry) == (7.0, False)


def test_parse_reply_raises_for_errors_and_parses_successes():
    a = adapter()
    ok = a.parse_reply(HttpReply(200, {}, completion(), 0.01))
    assert ok.text == "Hi"
    with pytest.raises(ProviderError) as caught:
        a.parse_reply(HttpReply(503, {"retry-after-ms": "250"}, openai_error("busy"), 0.01))
    assert caught.value.error_class is ErrorClass.OVERLOADED
    assert caught.value.retry_after_s == 0.25


@pytest.mark.parametrize(
    ("embedded", "expected"),
    [
        (429, ErrorClass.RATE_LIMITED),
        (502, ErrorClass.SERVER_ERROR),
        ("x", ErrorClass.SERVER_ERROR),
    ],
)
def test_an_error_inside_a_200_reply_is_classified_by_its_code(embedded, expected):
    body = json.dumps({"error": {"code": embedded, "message": "upstream trouble"}}).encode()
    with pytest.raises(ProviderError) as caught:
        adapter("openrouter").parse_reply(HttpReply(200, {}, body, 0.01))
    assert caught.value.error_class is expected


def test_the_probe_lists_models_with_the_key():
    probe = adapter().build_probe()
    assert (probe.method, probe.url) == ("GET", "https://api.example/v1/models")
    assert probe.headers["authorization"] == "Bearer test-key-123456"
    assert adapter("openrouter").build_probe().url == "https://api.example/v1/key"


def test_the_probe_reads_auth_failures_as_auth():
    with pytest.raises(ProviderError) as caught:
        adapter().read_probe(HttpReply(401, {}, openai_error("bad key", "invalid_api_key"), 0.01))
    assert caught.value.error_class is ErrorClass.AUTH
    adapter().read_probe(HttpReply(200, {}, b'{"object": "list", "data": []}', 0.01))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (12, 12),
        (12.0, 12),
        (0, 0),
        (-1, None),
        (1e999, None),
        (float("nan"), None),
        ("12", None),
        (True, None),
        (None, None),
        (1.5, None),
    ],
)
def test_token_counts_are_read_defensively(value, expected):
    from workers.providers.reading import token_count

    assert token_count(value) == expected


def test_absurdly_nested_json_is_an_invalid_response():
    with pytest.raises(ProviderError) as caught:
        parse_chat_completion(b"[" * 100_000)
    assert caught.value.error_class is ErrorClass.INVALID_RESPONSE


@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens": -1, "completion_tokens": 3},
        {"prompt_tokens": 1e999},
        {"prompt_tokens": "12", "completion_tokens": None},
        {"total_tokens": float("nan")},
    ],
)
def test_odd_usage_never_costs_the_completion(usage):
    raw = completion(usage=usage).replace(b"Infinity", b"1e999").replace(b"NaN", b"1e999")
    result = parse_chat_completion(raw)
    assert result.text == "Hi"


def test_a_parameter_this_model_refuses_is_unsupported_parameter_not_model_not_found():
    body = openai_error(
        "Unsupported parameter: 'stop' is not supported with this model.", "unsupported_parameter"
    )
    error = classify_error("openai", 400, body, {})
    assert isinstance(error, UnsupportedParameter)
    assert error.param == "stop", "named by the message when error.param is null"
