"""The Cohere v2 adapter against the Cohere simulator over HTTP: what goes on the wire, what
comes back, and every failure the simulator can inject."""

import pytest

from ops.simulator.cohere_sim import CohereSimulator
from routing.errors import ErrorClass, ProviderError
from routing.models import CompletionRequest
from tests.providers.harness import (
    adapter_for,
    complete,
    control,
    probe,
    recent,
    serving,
    settings,
)

KEY = "co-wire-test-0123456789abcdef"
MESSAGES = [{"role": "system", "content": "be terse"}, {"role": "user", "content": "hi"}]
REQUEST = CompletionRequest.model_validate(
    {"messages": MESSAGES, "max_tokens": 50, "temperature": 0.5, "top_p": 1.0, "stop": ["END"]}
)


@pytest.fixture
def simulator():
    return CohereSimulator(name="co", api_key=KEY)


@pytest.fixture
def server(simulator):
    with serving(simulator) as running:
        yield running


def adapter(server, key=KEY):
    return adapter_for(
        "cohere", "command-a-03-2025", settings(COHERE_API_KEY=key), base_url=server.url
    )


def test_the_request_on_the_wire_and_the_parsed_result(server):
    result = complete(adapter(server), REQUEST)
    (sent,) = recent(server)
    assert (sent["method"], sent["path"], sent["query"]) == ("POST", "/v2/chat", {})
    assert sent["headers"]["authorization"] == "Bearer [hidden]"
    assert sent["headers"]["content-type"] == "application/json"
    assert sent["body"] == {
        "model": "command-a-03-2025",
        "messages": MESSAGES,
        "max_tokens": 50,
        "temperature": 0.5,
        "p": 0.99,  # top_p 1.0 clamped: the simulator, like Cohere, refuses p above 0.99
        "stop_sequences": ["END"],
        "stream": False,
    }
    assert result.text.startswith("co (command-a-03-2025) answers")
    assert (result.finish_reason, result.provider_finish_reason) == ("stop", "COMPLETE")
    assert result.response_id
    assert result.usage is not None
    assert result.usage.prompt_tokens == 3  # billed: "be terse" + "hi", not the template
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens
    assert result.usage.cached_tokens == 0


def test_a_stop_sequence_and_max_tokens_end_the_reply_as_cohere_says(server):
    stopped = complete(
        adapter(server),
        CompletionRequest.model_validate({"messages": MESSAGES, "stop": ["answers"]}),
    )
    assert (stopped.text, stopped.finish_reason, stopped.provider_finish_reason) == (
        "co (command-a-03-2025) ",
        "stop",
        "STOP_SEQUENCE",
    )
    cut = complete(
        adapter(server), CompletionRequest.model_validate({"messages": MESSAGES, "max_tokens": 2})
    )
    assert (cut.finish_reason, cut.provider_finish_reason, len(cut.text)) == (
        "length",
        "MAX_TOKENS",
        8,
    )


def test_a_prompt_over_the_context_window_is_context_length(simulator, server):
    simulator.max_input_tokens = 100
    long = CompletionRequest.from_prompt("word " * 200)
    with pytest.raises(ProviderError) as caught:
        complete(adapter(server), long)
    assert caught.value.error_class is ErrorClass.CONTEXT_LENGTH
    assert "too many tokens" in caught.value.message


def test_the_probe_asks_check_api_key_with_either_key(server):
    """(Refused keys are auth for call and probe: tests/providers/test_protocol_contract.py.)"""
    with pytest.raises(ProviderError):
        probe(adapter(server, key="co-wrong-0123456789abcdef"))
    probe(adapter(server))
    assert control(server, "state")["stats"]["requests"]["/v1/check-api-key"] == 2
