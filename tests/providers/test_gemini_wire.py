"""The Gemini API adapter against the Gemini simulator over HTTP: what goes on the wire (the key
in ``x-goog-api-key``, never in the URL), and how every reply is read."""

import json

import pytest

from ops.simulator.gemini_sim import GeminiSimulator
from routing.errors import ErrorClass, ProviderError
from routing.models import CompletionRequest
from tests.providers.harness import (
    TRANSPORT,
    adapter_for,
    complete,
    control,
    probe,
    recent,
    serving,
    set_faults,
    settings,
)
from workers.http import HttpCall

KEY = "AIza-wire-test-0123456789abcdef"
REQUEST = CompletionRequest.model_validate(
    {
        "messages": [{"role": "system", "content": "be terse"}, {"role": "user", "content": "hi"}],
        "max_tokens": 50,
        "temperature": 0.5,
        "top_p": 0.9,
        "stop": ["END"],
    }
)


@pytest.fixture
def server():
    simulator = GeminiSimulator(
        name="gem", api_key=KEY, models=["gemini-2.5-flash", "gemini-2.5-pro"]
    )
    with serving(simulator) as running:
        yield running


def adapter(server, model="gemini-2.5-flash", key=KEY, **env):
    keys = {"GEMINI_API_KEY": key} if key else {}
    return adapter_for("gemini", model, settings(**keys, **env), base_url=f"{server.url}/v1beta")


def test_the_request_on_the_wire_and_the_parsed_result(server):
    result = complete(adapter(server), REQUEST)
    (sent,) = recent(server)
    assert (sent["method"], sent["path"], sent["query"]) == (
        "POST",
        "/v1beta/models/gemini-2.5-flash:generateContent",
        {},
    )
    assert sent["query_has_key"] is False
    assert sent["headers"]["x-goog-api-key"] == "(value) [hidden]"
    assert "authorization" not in sent["headers"]
    assert sent["headers"]["content-type"] == "application/json"
    assert sent["body"] == {
        "systemInstruction": {"parts": [{"text": "be terse"}]},
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "generationConfig": {
            "maxOutputTokens": 50,
            "temperature": 0.5,
            "topP": 0.9,
            "stopSequences": ["END"],
        },
    }
    assert result.text.startswith("gem (gemini-2.5-flash) answers")
    assert (result.finish_reason, result.provider_finish_reason) == ("stop", "STOP")
    assert result.model == "gemini-2.5-flash"
    assert result.response_id
    assert result.usage is not None
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens


def test_the_base_url_variable_is_honoured(server):
    env = settings(GEMINI_API_KEY=KEY, GEMINI_BASE_URL=f"{server.url}/v1beta/")
    complete(adapter_for("gemini", "models/gemini-2.5-pro", env), REQUEST)
    assert recent(server)[0]["path"] == "/v1beta/models/gemini-2.5-pro:generateContent"


def test_a_short_limit_stops_with_max_tokens(server):
    result = complete(adapter(server), CompletionRequest.from_prompt("hi", max_tokens=2))
    assert (result.finish_reason, result.provider_finish_reason) == ("length", "MAX_TOKENS")


def test_minimum_thinking_goes_on_the_wire_and_thoughts_count_as_output(server):
    roomy = REQUEST.model_copy(update={"max_tokens": 256})  # room to answer after thinking
    result = complete(
        adapter(server, "gemini-2.5-pro", GEMINI_FORCE_MINIMUM_THINKING_BUDGET="true"), roomy
    )
    config = recent(server)[0]["body"]["generationConfig"]
    assert config["thinkingConfig"] == {"thinkingBudget": 128}
    assert result.usage is not None
    plain = complete(adapter(server, "gemini-2.5-pro"), roomy)
    assert plain.usage is not None
    assert result.usage.completion_tokens == plain.usage.completion_tokens + 64
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens


def test_the_simulator_refuses_field_names_google_would_not_know(server):
    """What makes the wire tests able to fail: a misspelt field is a 400 here, as at Google."""
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    for broken in (
        {**body, "generationConfig": {"max_tokens": 5}},
        {**body, "system_instruction_text": "x"},
        {"contents": [{"role": "assistant", "parts": [{"text": "hi"}]}]},
    ):
        call = HttpCall(
            "POST",
            f"{server.url}/v1beta/models/gemini-2.5-flash:generateContent",
            {"x-goog-api-key": KEY, "content-type": "application/json"},
            json.dumps(broken).encode(),
        )
        with pytest.raises(ProviderError) as caught:
            adapter(server).parse_reply(TRANSPORT.send(call, timeout_s=5))
        assert caught.value.error_class is ErrorClass.BAD_REQUEST


def test_the_simulator_takes_a_key_in_the_query_and_says_so(server):
    """Google accepts ``?key=``; the recorder flags it, which is what the tests above check."""
    call = HttpCall(
        "POST",
        f"{server.url}/v1beta/models/gemini-2.5-flash:generateContent?key={KEY}",
        {"content-type": "application/json"},
        json.dumps({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}).encode(),
    )
    assert adapter(server).parse_reply(TRANSPORT.send(call, timeout_s=5)).text
    (sent,) = recent(server)
    assert (sent["query_has_key"], sent["query"], sent["auth_ok"]) == (True, {}, True)


def test_a_429_without_retry_info_has_no_delay(server):
    set_faults(server, fail_rate=1.0, fail_status=429)
    with pytest.raises(ProviderError) as caught:
        complete(adapter(server), REQUEST)
    assert (caught.value.error_class, caught.value.retry_after_s) == (ErrorClass.RATE_LIMITED, None)


def test_the_probe_lists_one_model_with_the_key_in_a_header(server):
    probe(adapter(server))
    assert control(server, "state")["stats"]["requests"]["/v1beta/models"] == 1


def test_the_simulator_records_a_wrong_or_missing_key_as_refused(server):
    """(That both are auth for call and probe: test_protocol_contract.py.)"""
    for wrong in (adapter(server, key="AIza-wrong-0123456789"), adapter(server, key=None)):
        with pytest.raises(ProviderError):
            complete(wrong, REQUEST)
        with pytest.raises(ProviderError):
            probe(wrong)
    statuses = [r["auth_ok"] for r in recent(server)]
    assert statuses == [False, False]
