"""The OpenAI-compatible adapter against the OpenAI simulator over HTTP: the example the other
protocols' wire tests follow."""

import pytest

from ops.simulator.openai_sim import OpenAISimulator
from routing.errors import ErrorClass, ProviderError
from routing.models import CompletionRequest
from tests.providers.harness import (
    adapter_for,
    complete,
    probe,
    recent,
    serving,
    set_faults,
    settings,
)

KEY = "sk-wire-test-0123456789abcdef"
REQUEST = CompletionRequest.model_validate(
    {
        "messages": [{"role": "system", "content": "be terse"}, {"role": "user", "content": "hi"}],
        "max_tokens": 50,
        "temperature": 0.5,
        "stop": ["END"],
    }
)


@pytest.fixture
def server():
    with serving(OpenAISimulator(name="oai", api_key=KEY)) as running:
        yield running


def adapter(server, provider="openai", **env):
    return adapter_for(
        provider,
        "gpt-test",
        settings(**{f"{provider.upper()}_API_KEY": KEY, **env}),
        base_url=f"{server.url}/v1",
    )


def test_the_request_on_the_wire_and_the_parsed_result(server):
    result = complete(adapter(server, OPENAI_ORGANIZATION="org-123"), REQUEST)
    (sent,) = recent(server)
    assert (sent["method"], sent["path"], sent["query"]) == ("POST", "/v1/chat/completions", {})
    assert sent["headers"]["authorization"] == "Bearer [hidden]"
    assert sent["headers"]["openai-organization"] == "org-123"
    assert sent["headers"]["content-type"] == "application/json"
    assert sent["body"] == {
        "model": "gpt-test",
        "messages": [{"role": "system", "content": "be terse"}, {"role": "user", "content": "hi"}],
        "max_completion_tokens": 50,
        "temperature": 0.5,
        "stop": ["END"],
    }
    assert result.text.startswith("oai (gpt-test) answers")
    assert result.finish_reason == "stop"
    assert result.usage is not None
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens


def test_openrouter_sends_its_attribution_headers(server):
    complete(
        adapter(
            server, "openrouter", OPENROUTER_REFERER="https://app.example", OPENROUTER_TITLE="App"
        ),
        REQUEST,
    )
    headers = recent(server)[0]["headers"]
    assert (headers["http-referer"], headers["x-title"], headers["x-openrouter-title"]) == (
        "https://app.example",
        "App",
        "App",
    )


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, ErrorClass.BAD_REQUEST),
        (403, ErrorClass.PERMISSION),
        (404, ErrorClass.MODEL_NOT_FOUND),
        (429, ErrorClass.RATE_LIMITED),
        (500, ErrorClass.SERVER_ERROR),
        (503, ErrorClass.OVERLOADED),
    ],
)
def test_every_failure_the_simulator_injects_has_its_class(server, status, error_class):
    set_faults(server, fail_rate=1.0, fail_status=status, retry_after_s=2)
    with pytest.raises(ProviderError) as caught:
        complete(adapter(server), REQUEST)
    assert caught.value.error_class is error_class
    assert caught.value.status_code == status
    assert caught.value.retry_after_s == 2.0


def test_a_wrong_key_is_auth_and_the_probe_says_so(server):
    wrong = adapter_for(
        "openai",
        "gpt-test",
        settings(OPENAI_API_KEY="sk-wrong-0123456789abcdef"),
        base_url=f"{server.url}/v1",
    )
    with pytest.raises(ProviderError) as caught:
        complete(wrong, REQUEST)
    assert caught.value.error_class is ErrorClass.AUTH
    with pytest.raises(ProviderError) as probed:
        probe(wrong)
    assert probed.value.error_class is ErrorClass.AUTH
    probe(adapter(server))


def test_malformed_and_hung_replies(server):
    set_faults(server, malformed=True)
    with pytest.raises(ProviderError) as caught:
        complete(adapter(server), REQUEST)
    assert caught.value.error_class is ErrorClass.INVALID_RESPONSE
    set_faults(server, malformed=False, hang=True)
    with pytest.raises(ProviderError) as hung:
        complete(adapter(server), REQUEST, timeout_s=0.3)
    assert hung.value.error_class is ErrorClass.TIMEOUT
