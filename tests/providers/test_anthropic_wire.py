"""The Anthropic adapter against the Anthropic simulator over HTTP: what goes on the wire, how
each reply the simulator can produce is read, and that the simulator refuses what the real API
refuses."""

import json

import pytest

from ops.simulator.anthropic_sim import AnthropicSimulator
from routing.errors import ErrorClass, ProviderError
from routing.models import CompletionRequest
from tests.providers.harness import (
    TRANSPORT,
    adapter_for,
    complete,
    recent,
    serving,
    set_faults,
    settings,
)
from workers.http import HttpCall
from workers.providers.anthropic import parse_message

KEY = "fake-anthropic-wire-key-0123"
REQUEST = CompletionRequest.model_validate(
    {
        "messages": [{"role": "system", "content": "be terse"}, {"role": "user", "content": "hi"}],
        "max_tokens": 50,
        "temperature": 0.5,
        "top_p": 0.9,
        "stop": ["NEVER-SAID"],
    }
)


@pytest.fixture
def server():
    with serving(AnthropicSimulator(name="ant", api_key=KEY, models=["claude-a", "claude-b"])) as s:
        yield s


def adapter(server, key=KEY, **env):
    return adapter_for(
        "anthropic",
        "claude-test",
        settings(ANTHROPIC_API_KEY=key, **env),
        base_url=server.url,
    )


def test_the_request_on_the_wire_and_the_parsed_result(server):
    result = complete(adapter(server), REQUEST)
    (sent,) = recent(server)
    assert (sent["method"], sent["path"], sent["query"]) == ("POST", "/v1/messages", {})
    headers = sent["headers"]
    assert headers["x-api-key"] == "(value) [hidden]"
    assert "authorization" not in headers
    assert headers["anthropic-version"] == "2023-06-01"
    assert headers["content-type"] == "application/json"
    assert "anthropic-beta" not in headers
    assert sent["body"] == {
        "model": "claude-test",
        "max_tokens": 50,
        "system": "be terse",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.5,
        "stop_sequences": ["NEVER-SAID"],
    }
    assert result.text.startswith("ant (claude-test) answers")
    assert (result.finish_reason, result.provider_finish_reason) == ("stop", "end_turn")
    assert result.model == "claude-test"
    assert result.response_id is not None
    assert result.response_id.startswith("msg_")
    assert result.usage is not None
    assert result.usage.prompt_tokens > 0
    assert result.usage.cached_tokens == 0
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens


def test_the_1m_beta_header_reaches_the_server(server):
    complete(adapter(server, ANTHROPIC_SONNET_1M="1"), REQUEST)
    assert recent(server)[0]["headers"]["anthropic-beta"] == "context-1m-2025-08-07"


def test_a_stop_sequence_and_a_small_max_tokens_end_the_reply_as_anthropic_says(server):
    stopped = complete(
        adapter(server), CompletionRequest.model_validate({**_plain(), "stop": ["answers"]})
    )
    assert (stopped.finish_reason, stopped.provider_finish_reason) == ("stop", "stop_sequence")
    assert stopped.text == "ant (claude-test) "
    cut = complete(adapter(server), CompletionRequest.model_validate({**_plain(), "max_tokens": 2}))
    assert (cut.finish_reason, cut.provider_finish_reason) == ("length", "max_tokens")
    assert len(cut.text) == 8


def _plain():
    return {"messages": [{"role": "user", "content": "hello"}]}


def test_a_429_says_when_to_come_back_even_unasked(server):
    set_faults(server, fail_rate=1.0, fail_status=429)
    with pytest.raises(ProviderError) as caught:
        complete(adapter(server), REQUEST)
    assert (caught.value.error_class, caught.value.retry_after_s) == (ErrorClass.RATE_LIMITED, 1.0)
    assert caught.value.provider_code == "rate_limit_error"


def send(server, method, path, headers, body=None):
    call = HttpCall(method, f"{server.url}{path}", headers, b"" if body is None else body)
    reply = TRANSPORT.send(call, timeout_s=5)
    return reply.status, json.loads(reply.body), reply.headers


AUTH = {"x-api-key": KEY, "anthropic-version": "2023-06-01", "content-type": "application/json"}
VALID = {"model": "claude-test", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}


@pytest.mark.parametrize(
    ("headers", "body", "status", "kind", "wording"),
    [
        (AUTH, {**VALID, "max_tokens": None}, 400, "invalid_request_error", "max_tokens"),
        (AUTH, {**VALID, "messages": []}, 400, "invalid_request_error", "messages"),
        (
            AUTH,
            {**VALID, "messages": [{"role": "system", "content": "x"}]},
            400,
            "invalid_request_error",
            "messages.0.role",
        ),
        (AUTH, {**VALID, "temperature": 1.5}, 400, "invalid_request_error", "temperature"),
        (
            {k: v for k, v in AUTH.items() if k != "anthropic-version"},
            VALID,
            400,
            "invalid_request_error",
            "anthropic-version: header is required",
        ),
        (
            {**AUTH, "anthropic-version": "2099-01-01"},
            VALID,
            400,
            "invalid_request_error",
            "anthropic-version: invalid version",
        ),
        (
            {k: v for k, v in AUTH.items() if k != "x-api-key"},
            VALID,
            401,
            "authentication_error",
            "x-api-key header is required",
        ),
    ],
)
def test_the_simulator_refuses_what_the_real_api_refuses(
    server, headers, body, status, kind, wording
):
    body = {k: v for k, v in body.items() if v is not None}
    got, payload, reply_headers = send(
        server, "POST", "/v1/messages", headers, json.dumps(body).encode()
    )
    assert got == status
    assert payload["type"] == "error"
    assert payload["error"]["type"] == kind
    assert wording in payload["error"]["message"]
    assert payload["request_id"] == reply_headers["request-id"]


def test_the_simulator_speaks_anthropics_success_and_models_shapes(server):
    status, payload, headers = send(
        server, "POST", "/v1/messages", AUTH, json.dumps(VALID).encode()
    )
    assert status == 200
    assert headers["request-id"].startswith("req_")
    assert set(payload) == {
        "id", "type", "role", "model", "content", "stop_reason", "stop_sequence", "usage"
    }  # fmt: skip
    assert set(payload["usage"]) == {
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
        "service_tier",
    }
    assert parse_message(json.dumps(payload).encode()).text == payload["content"][0]["text"]
    status, models, _ = send(server, "GET", "/v1/models?limit=1", AUTH)
    assert status == 200
    assert [m["id"] for m in models["data"]] == ["claude-a"]
    assert (models["has_more"], models["first_id"], models["last_id"]) == (
        True,
        "claude-a",
        "claude-a",
    )
    status, refused, _ = send(server, "GET", "/v1/models", {"x-api-key": KEY})
    assert (status, refused["error"]["message"]) == (400, "anthropic-version: header is required")
