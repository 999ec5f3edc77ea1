"""Conformance with the official mistralai SDK: Mistral speaks OpenAI's chat completions, so it
runs through the OpenAI-compatible adapter. For the same prompt, the adapter sends what
``Mistral.chat.complete`` sends (pointed at the OpenAI simulator with ``server_url``), and both
read the replies the same way: text, usage, and one error type per status (providers.md §13)."""

from typing import Any

import pytest
from mistralai.client import Mistral
from mistralai.client.errors import HTTPValidationError, MistralError, SDKError

from ops.simulator.openai_sim import OpenAISimulator
from routing.errors import ErrorClass, ProviderError
from routing.models import CompletionRequest
from tests.providers.harness import adapter_for, complete, recent, serving, set_faults, settings

KEY = "mistral-conformance-0123456789ab"
WRONG = "mistral-wrong-key-0123456789abc"
MODEL = "mistral-small-latest"
MESSAGES: Any = [{"role": "system", "content": "be terse"}, {"role": "user", "content": "Hi there"}]
REQUEST = CompletionRequest.model_validate(
    {"messages": MESSAGES, "max_tokens": 64, "temperature": 0.2, "top_p": 0.9, "stop": ["END"]}
)


@pytest.fixture
def server():
    with serving(OpenAISimulator(name="mis", api_key=KEY)) as running:
        yield running


def sdk_complete(server, key=KEY):
    # server_url is the API root; the SDK appends /v1/chat/completions itself.
    return Mistral(api_key=key, server_url=server.url).chat.complete(
        model=MODEL, messages=MESSAGES, max_tokens=64, temperature=0.2, top_p=0.9, stop=["END"]
    )


def ours(server, key=KEY):
    return adapter_for("mistral", MODEL, settings(MISTRAL_API_KEY=key), base_url=f"{server.url}/v1")


def test_the_adapter_sends_what_the_sdk_sends(server):
    sdk_complete(server)
    complete(ours(server), REQUEST)
    theirs, mine = recent(server)
    assert (mine["method"], mine["path"], mine["query"]) == (
        theirs["method"],
        theirs["path"],
        theirs["query"],
    )
    assert mine["path"] == "/v1/chat/completions"
    assert (
        mine["headers"]["authorization"]
        == theirs["headers"]["authorization"]
        == ("Bearer [hidden]")
    )
    assert theirs["auth_ok"] is mine["auth_ok"] is True
    # The SDK spells out the default "stream": false; we leave it out. Otherwise the same body,
    # with Mistral's field names: max_tokens (not max_completion_tokens), no OpenAI "seed".
    assert theirs["body"] == {**mine["body"], "stream": False}
    assert mine["body"]["max_tokens"] == 64
    assert not {"max_completion_tokens", "seed"} & (set(mine["body"]) | set(theirs["body"]))


def test_both_read_a_completion_the_same_way(server):
    theirs = sdk_complete(server)
    mine = complete(ours(server), REQUEST)
    assert mine.text == theirs.choices[0].message.content
    assert mine.finish_reason == theirs.choices[0].finish_reason
    assert mine.usage is not None
    assert (mine.usage.prompt_tokens, mine.usage.completion_tokens, mine.usage.total_tokens) == (
        theirs.usage.prompt_tokens,
        theirs.usage.completion_tokens,
        theirs.usage.total_tokens,
    )


@pytest.mark.parametrize(
    ("status", "sdk_error", "error_class"),
    [
        (400, SDKError, ErrorClass.BAD_REQUEST),
        (401, SDKError, ErrorClass.AUTH),
        (403, SDKError, ErrorClass.PERMISSION),
        (404, SDKError, ErrorClass.MODEL_NOT_FOUND),
        (422, HTTPValidationError, ErrorClass.BAD_REQUEST),
        (429, SDKError, ErrorClass.RATE_LIMITED),
        (500, SDKError, ErrorClass.SERVER_ERROR),
        (503, SDKError, ErrorClass.OVERLOADED),
    ],
)
def test_both_read_an_error_the_same_way(server, status, sdk_error, error_class):
    set_faults(server, fail_rate=1.0, fail_status=status)
    with pytest.raises(sdk_error) as theirs:
        sdk_complete(server)
    with pytest.raises(ProviderError) as mine:
        complete(ours(server), REQUEST)
    assert mine.value.error_class is error_class
    assert mine.value.status_code == theirs.value.status_code == status


def test_a_wrong_key_is_an_authentication_error_to_both(server):
    with pytest.raises(MistralError) as theirs:
        sdk_complete(server, key=WRONG)
    assert theirs.value.status_code == 401
    with pytest.raises(ProviderError) as caught:
        complete(ours(server, key=WRONG), REQUEST)
    assert caught.value.error_class is ErrorClass.AUTH
