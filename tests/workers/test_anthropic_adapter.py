import json

import pytest
from pydantic import SecretStr

from routing.config import DeploymentConfig
from routing.errors import ErrorClass, ProviderError
from routing.models import CompletionRequest
from tests.providers.harness import settings
from workers.http import HttpReply
from workers.providers.anthropic import (
    CONTEXT_1M_BETA,
    DEFAULT_MAX_TOKENS,
    AnthropicAdapter,
    anthropic_body,
    classify_error,
    parse_message,
)
from workers.providers.base import USER_AGENT
from workers.providers.reading import MAX_ERROR_MESSAGE
from workers.providers.registry import build_adapter

DEPLOYMENT = DeploymentConfig(id="d1", provider="anthropic", model="claude-test")


def adapter(key="sk-ant-test-123456", betas=(), base="https://api.example"):
    return AnthropicAdapter(
        DEPLOYMENT, base_url=base, api_key=SecretStr(key) if key else None, betas=betas
    )


def request(*messages, **fields):
    chat = [{"role": role, "content": content} for role, content in messages]
    return CompletionRequest.model_validate({"messages": chat, **fields})


REQUEST = request(
    ("system", "be terse"), ("user", "hi"), max_tokens=64, temperature=0.2, stop=["END"]
)


def test_the_call_posts_a_message_with_key_and_version_headers():
    call = adapter().build_call(REQUEST)
    assert (call.method, call.url) == ("POST", "https://api.example/v1/messages")
    assert call.headers["x-api-key"] == "sk-ant-test-123456"
    assert call.headers["anthropic-version"] == "2023-06-01"
    assert call.headers["content-type"] == "application/json"
    assert call.headers["user-agent"] == USER_AGENT
    assert "authorization" not in call.headers
    assert "anthropic-beta" not in call.headers
    assert "sk-ant-test-123456" not in repr(call)
    assert json.loads(call.body) == {
        "model": "claude-test",
        "max_tokens": 64,
        "system": "be terse",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.2,
        "stop_sequences": ["END"],
    }


def test_every_system_message_is_joined_into_the_top_level_system():
    body = anthropic_body(
        request(("system", "one"), ("user", "hi"), ("system", "two"), ("assistant", "yo")),
        model="m",
        default_max_tokens=10,
    )
    assert body["system"] == "one\n\ntwo"
    assert [m["role"] for m in body["messages"]] == ["user", "assistant"]


def test_consecutive_turns_of_one_role_become_one_message_of_text_blocks():
    body = anthropic_body(
        request(("user", "a"), ("system", "s"), ("user", "b"), ("assistant", "c"), ("user", "d")),
        model="m",
        default_max_tokens=10,
    )
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": "c"},
        {"role": "user", "content": "d"},
    ]


def test_max_tokens_defaults_and_model_none_leaves_the_model_out():
    body = anthropic_body(request(("user", "hi")), model=None, default_max_tokens=999)
    assert body == {"max_tokens": 999, "messages": [{"role": "user", "content": "hi"}]}
    call_body = json.loads(adapter().build_call(request(("user", "hi"))).body)
    assert call_body["max_tokens"] == DEFAULT_MAX_TOKENS == 4096
    assert "system" not in call_body
    assert "stop_sequences" not in call_body


def test_sampling_fields_are_sent_and_temperature_is_capped_at_anthropics_maximum():
    body = anthropic_body(
        request(("user", "hi"), temperature=1.7, stop="###"), model="m", default_max_tokens=10
    )
    assert (body["temperature"], body["stop_sequences"]) == (1.0, ["###"])
    alone = anthropic_body(request(("user", "hi"), top_p=0.9), model="m", default_max_tokens=10)
    assert alone["top_p"] == 0.9


def test_temperature_and_top_p_together_send_only_temperature():
    body = anthropic_body(
        request(("user", "hi"), temperature=0.5, top_p=0.9), model="m", default_max_tokens=10
    )
    assert body["temperature"] == 0.5
    assert "top_p" not in body, "newer Claude models refuse the pair"


def test_the_1m_context_beta_header_follows_the_setting():
    on = build_adapter(
        DEPLOYMENT, settings(ANTHROPIC_API_KEY="sk-ant-1", ANTHROPIC_SONNET_1M="true")
    )
    off = build_adapter(DEPLOYMENT, settings(ANTHROPIC_API_KEY="sk-ant-1"))
    assert on.build_call(REQUEST).headers["anthropic-beta"] == CONTEXT_1M_BETA
    assert CONTEXT_1M_BETA == "context-1m-2025-08-07"
    assert "anthropic-beta" not in off.build_call(REQUEST).headers


def test_from_settings_resolves_base_url_key_and_retries():
    env = settings(ANTHROPIC_API_KEY="sk-ant-1", ANTHROPIC_MAX_RETRIES="5")
    default = build_adapter(DEPLOYMENT, env)
    assert isinstance(default, AnthropicAdapter)
    assert default.build_call(REQUEST).url == "https://api.anthropic.com/v1/messages"
    assert default.build_call(REQUEST).headers["x-api-key"] == "sk-ant-1"
    assert default.default_retries == 5
    from_env = build_adapter(
        DEPLOYMENT, settings(ANTHROPIC_API_KEY="k", ANTHROPIC_BASE_URL="http://proxy:9/")
    )
    assert from_env.build_call(REQUEST).url == "http://proxy:9/v1/messages"
    configured = DeploymentConfig(
        id="d2",
        provider="anthropic",
        model="m",
        base_url="http://own:1",
        api_key_env="TURNOUT_TEST_UNSET_ANTHROPIC_KEY",
    )
    own = build_adapter(configured, settings(ANTHROPIC_BASE_URL="http://proxy:9"))
    assert own.build_call(REQUEST).url == "http://own:1/v1/messages"
    assert "x-api-key" not in own.build_call(REQUEST).headers  # that variable is not set


def message(**overrides):
    body = {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-test-20250929",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "x"},
            {"type": "text", "text": "Hello"},
            {"type": "text", "text": " there"},
        ],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 10,
            "output_tokens": 5,
            "cache_creation_input_tokens": 3,
            "cache_read_input_tokens": 7,
            "service_tier": "standard",
        },
    }
    body.update(overrides)
    return json.dumps(body).encode()


def test_a_message_joins_its_text_blocks_and_counts_cached_input():
    result = parse_message(message())
    assert result.text == "Hello there"
    assert (result.finish_reason, result.provider_finish_reason) == ("stop", "end_turn")
    assert (result.model, result.response_id) == ("claude-test-20250929", "msg_01")
    assert result.usage is not None
    assert result.usage.model_dump() == {
        "prompt_tokens": 20,
        "completion_tokens": 5,
        "total_tokens": 25,
        "cached_tokens": 7,
    }


def test_usage_without_cache_fields_and_broken_usage():
    plain = parse_message(message(usage={"input_tokens": 4, "output_tokens": 2}))
    assert plain.usage is not None
    assert (plain.usage.prompt_tokens, plain.usage.cached_tokens) == (4, None)
    assert parse_message(message(usage={"input_tokens": "many"})).usage is None
    assert parse_message(message(usage={"input_tokens": -3, "output_tokens": 1})).usage is None


@pytest.mark.parametrize(
    ("stop_reason", "expected"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("pause_turn", "length"),
        ("tool_use", "tool_calls"),
        ("some_future_reason", "stop"),
    ],
)
def test_stop_reasons_are_normalised_and_the_original_kept(stop_reason, expected):
    result = parse_message(message(stop_reason=stop_reason))
    assert (result.finish_reason, result.provider_finish_reason) == (expected, stop_reason)


def test_a_refusal_is_content_policy_with_its_reason():
    refused = message(
        stop_reason="refusal",
        stop_details={"type": "refusal", "category": "cyber", "explanation": "no malware"},
    )
    with pytest.raises(ProviderError) as caught:
        parse_message(refused)
    assert caught.value.error_class is ErrorClass.CONTENT_POLICY
    assert "cyber: no malware" in caught.value.message


@pytest.mark.parametrize(
    "body",
    [
        b'{"id": "msg_1", "type": "message", "content": [',
        b"<html>bad gateway</html>",
        b"[]",
        json.dumps({"type": "error", "error": {"type": "overloaded_error"}}).encode(),
        message(type="completion"),
        message(content="Hello"),
        message(content=["Hello"]),
        message(content=[{"type": "text", "text": None}]),
    ],
)
def test_200_bodies_that_are_not_a_message_are_invalid_responses(body):
    with pytest.raises(ProviderError) as caught:
        parse_message(body)
    assert caught.value.error_class is ErrorClass.INVALID_RESPONSE
    assert caught.value.status_code == 200


def envelope(kind, text, code=None):
    error = {"type": kind, "message": text}
    if code:
        error["details"] = {"error_code": code}
    return json.dumps({"type": "error", "error": error, "request_id": "req_1"}).encode()


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            400,
            envelope("invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum"),
            ErrorClass.CONTEXT_LENGTH,
        ),
        (
            400,
            envelope(
                "invalid_request_error",
                "input length and `max_tokens` exceed context limit: 198000 + 8192 > 200000",
            ),
            ErrorClass.CONTEXT_LENGTH,
        ),
        (
            400,
            envelope(
                "invalid_request_error",
                "You have reached your specified API usage limits. You will regain access on "
                "2026-12-01 at 00:00 UTC.",
            ),
            ErrorClass.PERMISSION,
        ),
        (
            400,
            envelope(
                "invalid_request_error",
                "Your credit balance is too low to access the Anthropic API.",
            ),
            ErrorClass.PERMISSION,
        ),
        (
            400,
            envelope("invalid_request_error", "disabled", "organization_on_hold"),
            ErrorClass.PERMISSION,
        ),
        (
            400,
            envelope("invalid_request_error", "model: claude-nope does not exist"),
            ErrorClass.MODEL_NOT_FOUND,
        ),
        (
            400,
            envelope("invalid_request_error", "messages: text content blocks must be non-empty"),
            ErrorClass.BAD_REQUEST,
        ),
        (401, envelope("authentication_error", "invalid x-api-key"), ErrorClass.AUTH),
        (402, envelope("billing_error", "billing issue"), ErrorClass.PERMISSION),
        (403, envelope("permission_error", "no access"), ErrorClass.PERMISSION),
        (404, envelope("not_found_error", "model: claude-nope"), ErrorClass.MODEL_NOT_FOUND),
        (408, b"timeout", ErrorClass.TIMEOUT),
        (409, envelope("conflict_error", "conflict"), ErrorClass.SERVER_ERROR),
        (413, envelope("request_too_large", "too big"), ErrorClass.CONTEXT_LENGTH),
        (413, b"<html>413 Request Entity Too Large</html>", ErrorClass.CONTEXT_LENGTH),
        (429, envelope("rate_limit_error", "slow down"), ErrorClass.RATE_LIMITED),
        (
            429,
            envelope("rate_limit_error", "ramp", "ramp_limit_exceeded"),
            ErrorClass.RATE_LIMITED,
        ),
        (
            429,
            envelope("rate_limit_error", "monthly", "enforced_spend_limit_reached"),
            ErrorClass.PERMISSION,
        ),
        (500, envelope("api_error", "Internal server error"), ErrorClass.SERVER_ERROR),
        (502, b"<html>bad gateway</html>", ErrorClass.SERVER_ERROR),
        (503, envelope("overloaded_error", "Overloaded"), ErrorClass.OVERLOADED),
        (504, envelope("timeout_error", "Request timed out"), ErrorClass.TIMEOUT),
        (529, envelope("overloaded_error", "Overloaded"), ErrorClass.OVERLOADED),
        (529, b"<html>overloaded</html>", ErrorClass.OVERLOADED),
        (504, b"<html>gateway timeout</html>", ErrorClass.TIMEOUT),
        (418, b"teapot", ErrorClass.INVALID_RESPONSE),
        (422, envelope("invalid_request_error", "?"), ErrorClass.INVALID_RESPONSE),
    ],
)
def test_error_statuses_map_to_one_class_each(status, body, expected):
    error = classify_error(status, body, {})
    assert error.error_class is expected
    assert error.status_code == status
    assert error.message.startswith(f"{status} from anthropic")


def test_the_error_message_type_and_code_come_from_the_body_and_are_clipped():
    error = classify_error(404, envelope("not_found_error", "model: claude-nope"), {})
    assert error.message == "404 from anthropic: not_found_error: model: claude-nope"
    assert error.provider_code == "not_found_error"
    coded = classify_error(429, envelope("rate_limit_error", "x", "ramp_limit_exceeded"), {})
    assert coded.provider_code == "ramp_limit_exceeded"
    long = classify_error(500, envelope("api_error", "x" * 5000), {})
    assert len(long.message) <= MAX_ERROR_MESSAGE
    assert classify_error(502, b"", {}).message == "502 from anthropic: (empty body)"


def test_retry_after_and_should_retry_are_read_from_headers():
    error = classify_error(
        429, envelope("rate_limit_error", "slow"), {"retry-after": "7", "x-should-retry": "false"}
    )
    assert (error.retry_after_s, error.should_retry) == (7.0, False)
    assert error.disposition.value == "failover"
    overloaded = classify_error(529, envelope("overloaded_error", "x"), {"x-should-retry": "true"})
    assert (overloaded.retry_after_s, overloaded.should_retry) == (None, True)


def test_parse_reply_raises_for_errors_and_parses_successes():
    assert adapter().parse_reply(HttpReply(200, {}, message(), 0.01)).text == "Hello there"
    with pytest.raises(ProviderError) as caught:
        adapter().parse_reply(
            HttpReply(529, {"retry-after-ms": "250"}, envelope("overloaded_error", "x"), 0.01)
        )
    assert caught.value.error_class is ErrorClass.OVERLOADED
    assert caught.value.retry_after_s == 0.25


def test_the_probe_lists_one_model_with_the_same_auth_headers():
    probe = adapter(betas=(CONTEXT_1M_BETA,)).build_probe()
    assert (probe.method, probe.url, probe.body) == (
        "GET",
        "https://api.example/v1/models?limit=1",
        b"",
    )
    assert probe.headers["x-api-key"] == "sk-ant-test-123456"
    assert probe.headers["anthropic-version"] == "2023-06-01"
    assert "content-type" not in probe.headers


def test_the_probe_reads_failures_and_wants_a_models_list():
    with pytest.raises(ProviderError) as caught:
        adapter().read_probe(
            HttpReply(401, {}, envelope("authentication_error", "invalid x-api-key"), 0.01)
        )
    assert caught.value.error_class is ErrorClass.AUTH
    with pytest.raises(ProviderError) as not_a_list:
        adapter().read_probe(HttpReply(200, {}, b"<html>welcome</html>", 0.01))
    assert not_a_list.value.error_class is ErrorClass.INVALID_RESPONSE
    adapter().read_probe(HttpReply(200, {}, b'{"data": [], "has_more": false}', 0.01))
