"""Conformance with the official openai SDK: for the same prompt, our adapter sends what the SDK
sends, and both read the simulator's replies the same way (text, usage, error type)."""

from typing import Any

import openai
import pytest

from ops.simulator.openai_sim import OpenAISimulator
from routing.errors import ErrorClass, ProviderError
from routing.models import CompletionRequest
from tests.providers.harness import adapter_for, complete, recent, serving, set_faults, settings

KEY = "sk-conformance-0123456789abcdef"
MESSAGES: Any = [{"role": "system", "content": "be terse"}, {"role": "user", "content": "Hi there"}]
REQUEST = CompletionRequest.model_validate(
    {"messages": MESSAGES, "max_tokens": 64, "temperature": 0.2, "stop": ["END"]}
)


@pytest.fixture
def server():
    with serving(OpenAISimulator(name="oai", api_key=KEY)) as running:
        yield running


def sdk(server):
    return openai.OpenAI(api_key=KEY, base_url=f"{server.url}/v1", max_retries=0)


def ours(server):
    return adapter_for(
        "openai", "gpt-4o-mini", settings(OPENAI_API_KEY=KEY), base_url=f"{server.url}/v1"
    )


def sdk_create(server):
    return sdk(server).chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        max_completion_tokens=64,
        temperature=0.2,
        stop=["END"],
    )


def test_the_adapter_sends_what_the_sdk_sends(server):
    sdk_create(server)
    complete(ours(server), REQUEST)
    theirs, mine = recent(server)
    assert (mine["method"], mine["path"], mine["query"]) == (
        theirs["method"],
        theirs["path"],
        theirs["query"],
    )
    assert (
        mine["headers"]["authorization"]
        == theirs["headers"]["authorization"]
        == ("Bearer [hidden]")
    )
    assert mine["body"] == theirs["body"]


def test_both_read_a_completion_the_same_way(server):
    theirs = sdk_create(server)
    mine = complete(ours(server), REQUEST)
    assert mine.text == theirs.choices[0].message.content
    assert mine.finish_reason == theirs.choices[0].finish_reason
    assert mine.usage is not None
    assert (mine.usage.prompt_tokens, mine.usage.completion_tokens) == (
        theirs.usage.prompt_tokens,
        theirs.usage.completion_tokens,
    )


@pytest.mark.parametrize(
    ("status", "sdk_error", "error_class"),
    [
        (400, openai.BadRequestError, ErrorClass.BAD_REQUEST),
        (403, openai.PermissionDeniedError, ErrorClass.PERMISSION),
        (404, openai.NotFoundError, ErrorClass.MODEL_NOT_FOUND),
        (429, openai.RateLimitError, ErrorClass.RATE_LIMITED),
        (500, openai.InternalServerError, ErrorClass.SERVER_ERROR),
        (503, openai.InternalServerError, ErrorClass.OVERLOADED),
    ],
)
def test_both_read_an_error_the_same_way(server, status, sdk_error, error_class):
    set_faults(server, fail_rate=1.0, fail_status=status)
    with pytest.raises(sdk_error):
        sdk_create(server)
    with pytest.raises(ProviderError) as caught:
        complete(ours(server), REQUEST)
    assert caught.value.error_class is error_class


def test_a_wrong_key_is_an_authentication_error_to_both(server):
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(
            api_key="sk-wrong-0123456789abcdef", base_url=f"{server.url}/v1", max_retries=0
        ).chat.completions.create(model="m", messages=MESSAGES)
    wrong = adapter_for(
        "openai",
        "m",
        settings(OPENAI_API_KEY="sk-wrong-0123456789abcdef"),
        base_url=f"{server.url}/v1",
    )
    with pytest.raises(ProviderError) as caught:
        complete(wrong, REQUEST)
    assert caught.value.error_class is ErrorClass.AUTH
