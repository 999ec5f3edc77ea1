"""The AI21 adapter against the AI21 simulator over HTTP.

The ai21 SDK cannot be installed beside turnout (it pins tenacity below 9), so there is no
SDK conformance test: these pin the request as the SDK's source builds it (AI21Labs/ai21-python
4.2.0, ``http_client/base_http_client.py`` ``_build_headers``, ``chat/base_chat_completions.py``
``_create_body``): bearer auth, JSON, the given fields only and always ``"stream": false``."""

import pytest

from ops.simulator.ai21_sim import AI21Simulator
from routing.errors import ErrorClass, ProviderError
from routing.models import CompletionRequest
from tests.providers.harness import adapter_for, complete, probe, recent, serving, settings

KEY = "ai21-wire-test-0123456789abcdef"
MESSAGES = [{"role": "system", "content": "be terse"}, {"role": "user", "content": "hi"}]
REQUEST = CompletionRequest.model_validate(
    {"messages": MESSAGES, "max_tokens": 50, "temperature": 0.4, "top_p": 0.9, "stop": ["END"]}
)


def adapter(server, key=KEY, model="jamba-mini", **env):
    return adapter_for(
        "ai21", model, settings(AI21_API_KEY=key, **env), base_url=f"{server.url}/studio/v1"
    )


@pytest.fixture
def server():
    with serving(AI21Simulator(name="ai21", api_key=KEY)) as running:
        yield running


def test_the_request_on_the_wire_is_the_sdks(server):
    result = complete(adapter(server), REQUEST)
    (sent,) = recent(server)
    assert (sent["method"], sent["path"], sent["query"]) == (
        "POST",
        "/studio/v1/chat/completions",
        {},
    )
    assert sent["headers"]["authorization"] == "Bearer [hidden]"
    assert sent["headers"]["content-type"] == "application/json"
    assert sent["body"] == {
        "model": "jamba-mini",
        "messages": MESSAGES,
        "max_tokens": 50,
        "temperature": 0.4,
        "top_p": 0.9,
        "stop": ["END"],
        "stream": False,
    }
    assert result.text.startswith("ai21 (jamba-mini) answers")
    assert result.usage is not None
    assert result.usage.total_tokens > 0
    assert result.response_id
    assert result.response_id.startswith("chat-")


def test_only_given_fields_are_sent(server):
    bare = CompletionRequest.model_validate({"messages": [{"role": "user", "content": "hi"}]})
    complete(adapter(server), bare)
    assert recent(server)[0]["body"] == {
        "model": "jamba-mini",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": False,
    }


def test_the_base_url_comes_from_ai21_api_host_and_retries_from_ai21_num_retries(server):
    made = adapter_for(
        "ai21",
        "jamba-large",
        settings(AI21_API_KEY=KEY, AI21_API_HOST=f"{server.url}/studio/v1", AI21_NUM_RETRIES="3"),
    )
    complete(made, REQUEST)
    assert made.default_retries == 3
    assert adapter(server).default_retries == 0  # the SDK's default


def test_an_unknown_model_is_model_not_found(server):
    with pytest.raises(ProviderError) as caught:
        complete(adapter(server, model="jamba-instruct-9"), REQUEST)
    assert caught.value.error_class is ErrorClass.MODEL_NOT_FOUND


def test_a_field_the_schema_refuses_is_bad_request(server):
    hot = CompletionRequest.model_validate(
        {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 9000}
    )
    with pytest.raises(ProviderError) as caught:
        complete(adapter(server), hot)
    assert (caught.value.error_class, caught.value.status_code) == (ErrorClass.BAD_REQUEST, 422)


def test_a_prompt_over_the_context_window_is_context_length():
    simulator = AI21Simulator(name="ai21", api_key=KEY)
    simulator.context_window = 100
    long = CompletionRequest.model_validate({"messages": [{"role": "user", "content": "x" * 800}]})
    with serving(simulator) as server, pytest.raises(ProviderError) as caught:
        complete(adapter(server), long)
    assert caught.value.error_class is ErrorClass.CONTEXT_LENGTH


def test_the_probe_lists_the_file_library(server):
    probe(adapter(server))
    with pytest.raises(ProviderError) as caught:
        probe(adapter(server, key="ai21-wrong-0123456789"))
    assert caught.value.error_class is ErrorClass.AUTH
    assert "Bad or missing API token" in caught.value.message
