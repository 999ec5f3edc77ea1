"""The OpenAI-compatible adapter against the OpenAI simulator over HTTP: the example the other
protocols' wire tests follow."""

import pytest

from ops.simulator.openai_sim import OpenAISimulator
from routing.models import CompletionRequest
from tests.providers.harness import (
    adapter_for,
    complete,
    recent,
    serving,
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
