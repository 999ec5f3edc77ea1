"""Conformance with the official openai SDK on Azure: for the same prompt, our adapter sends what
``AzureOpenAI`` sends (classic) and what Microsoft's v1 sample client, the plain ``OpenAI`` with
``base_url=<endpoint>/openai/v1/``, sends; both read the simulator's replies the same way.

One difference is deliberate: on v1 the SDK sends the key as ``Authorization: Bearer`` and we
send it as ``api-key`` (the header Microsoft's REST samples document for both surfaces). The
simulator checks the key's value on either header, so both being accepted proves both carry it.
"""

from typing import Any

import openai
import pytest

from ops.simulator.azure_sim import FILTER_OUTPUT_MARKER, AzureSimulator
from routing.errors import ErrorClass, ProviderError
from routing.models import CompletionRequest
from tests.providers.harness import adapter_for, complete, recent, serving, set_faults, settings

KEY = "azure-conformance-key-0123456789"
WRONG = "azure-wrong-key-0123456789abcd"
DEPLOYMENT = "gpt4o-prod"
API_VERSION = "2024-10-21"
MESSAGES: Any = [{"role": "system", "content": "be terse"}, {"role": "user", "content": "Hi there"}]
REQUEST = CompletionRequest.model_validate(
    {"messages": MESSAGES, "max_tokens": 64, "temperature": 0.2, "stop": ["END"]}
)
SURFACES = ["classic", "v1"]


@pytest.fixture
def server():
    with serving(AzureSimulator(name="az", api_key=KEY, models=[DEPLOYMENT])) as running:
        yield running


def sdk(server, surface, key=KEY):
    if surface == "classic":
        return openai.AzureOpenAI(
            api_key=key, azure_endpoint=server.url, api_version=API_VERSION, max_retries=0
        )
    return openai.OpenAI(api_key=key, base_url=f"{server.url}/openai/v1/", max_retries=0)


def ours(server, surface, key=KEY):
    version = API_VERSION if surface == "classic" else "v1"
    env = settings(AZURE_API_KEY=key, AZURE_BASE_URL=server.url, AZURE_API_VERSION=version)
    return adapter_for("azure", DEPLOYMENT, env)


def sdk_create(server, surface, messages=MESSAGES, key=KEY):
    return sdk(server, surface, key).chat.completions.create(
        model=DEPLOYMENT,
        messages=messages,
        max_completion_tokens=64,
        temperature=0.2,
        stop=["END"],
    )


@pytest.mark.parametrize("surface", SURFACES)
def test_the_adapter_sends_what_the_sdk_sends(server, surface):
    sdk_create(server, surface)
    complete(ours(server, surface), REQUEST)
    theirs, mine = recent(server)
    assert (mine["method"], mine["path"], mine["query"]) == (
        theirs["method"],
        theirs["path"],
        theirs["query"],
    )
    assert mine["body"] == theirs["body"]
    assert theirs["auth_ok"] is mine["auth_ok"] is True
    assert mine["headers"]["api-key"] == "(value) [hidden]"
    assert "authorization" not in mine["headers"]
    if surface == "classic":
        assert theirs["query"] == {"api-version": API_VERSION}
        assert theirs["headers"]["api-key"] == "(value) [hidden]"
        assert "authorization" not in theirs["headers"]
    else:
        assert (theirs["path"], theirs["query"]) == ("/openai/v1/chat/completions", {})
        assert theirs["headers"]["authorization"] == "Bearer [hidden]"
        assert "api-key" not in theirs["headers"]


@pytest.mark.parametrize("surface", SURFACES)
def test_both_read_a_completion_the_same_way(server, surface):
    theirs = sdk_create(server, surface)
    mine = complete(ours(server, surface), REQUEST)
    assert mine.text == theirs.choices[0].message.content
    assert mine.finish_reason == theirs.choices[0].finish_reason
    assert mine.usage is not None
    assert theirs.usage is not None
    assert (mine.usage.prompt_tokens, mine.usage.completion_tokens, mine.usage.total_tokens) == (
        theirs.usage.prompt_tokens,
        theirs.usage.completion_tokens,
        theirs.usage.total_tokens,
    )


@pytest.mark.parametrize("surface", SURFACES)
def test_filtered_output_is_what_the_sdk_calls_content_filter(server, surface):
    messages = [{"role": "user", "content": f"tell me {FILTER_OUTPUT_MARKER}"}]
    theirs = sdk_create(server, surface, messages=messages)
    assert (theirs.choices[0].finish_reason, theirs.choices[0].message.content) == (
        "content_filter",
        None,
    )
    with pytest.raises(ProviderError) as caught:
        complete(ours(server, surface), CompletionRequest.model_validate({"messages": messages}))
    assert caught.value.error_class is ErrorClass.CONTENT_POLICY


@pytest.mark.parametrize(
    ("status", "sdk_error", "error_class"),
    [
        (400, openai.BadRequestError, ErrorClass.CONTENT_POLICY),
        (401, openai.AuthenticationError, ErrorClass.AUTH),
        (403, openai.PermissionDeniedError, ErrorClass.PERMISSION),
        (404, openai.NotFoundError, ErrorClass.MODEL_NOT_FOUND),
        (429, openai.RateLimitError, ErrorClass.RATE_LIMITED),
        (500, openai.InternalServerError, ErrorClass.SERVER_ERROR),
        (503, openai.InternalServerError, ErrorClass.OVERLOADED),
    ],
)
@pytest.mark.parametrize("surface", SURFACES)
def test_both_read_an_error_the_same_way(server, surface, status, sdk_error, error_class):
    set_faults(server, fail_rate=1.0, fail_status=status)
    with pytest.raises(sdk_error) as theirs:
        sdk_create(server, surface)
    with pytest.raises(ProviderError) as mine:
        complete(ours(server, surface), REQUEST)
    assert mine.value.error_class is error_class
    assert mine.value.status_code == theirs.value.status_code == status
    assert mine.value.provider_code == theirs.value.code


def test_both_wait_as_long_as_a_429_asks(server):
    set_faults(server, fail_rate=1.0, fail_status=429, retry_after_s=1.5)
    with pytest.raises(openai.RateLimitError) as theirs:
        sdk_create(server, "classic")
    with pytest.raises(ProviderError) as mine:
        complete(ours(server, "classic"), REQUEST)
    client = sdk(server, "classic")
    # The SDK's own parser (retry-after-ms first), applied to the reply it received.
    sdk_wait = client._parse_retry_after_header(theirs.value.response.headers)
    assert sdk_wait == mine.value.retry_after_s == 1.5


@pytest.mark.parametrize("surface", SURFACES)
def test_a_wrong_key_is_an_authentication_error_to_both(server, surface):
    with pytest.raises(openai.AuthenticationError):
        sdk_create(server, surface, key=WRONG)
    with pytest.raises(ProviderError) as caught:
        complete(ours(server, surface, key=WRONG), REQUEST)
    assert caught.value.error_class is ErrorClass.AUTH


def test_an_unsupported_api_version_is_a_bad_request_to_the_sdk_and_a_failover_to_us(server):
    with pytest.raises(openai.BadRequestError):
        openai.AzureOpenAI(
            api_key=KEY, azure_endpoint=server.url, api_version="2019-01-01", max_retries=0
        ).chat.completions.create(model=DEPLOYMENT, messages=MESSAGES)
    env = settings(AZURE_API_KEY=KEY, AZURE_BASE_URL=server.url, AZURE_API_VERSION="2019-01-01")
    with pytest.raises(ProviderError) as caught:
        complete(adapter_for("azure", DEPLOYMENT, env), REQUEST)
    assert caught.value.error_class is ErrorClass.MODEL_NOT_FOUND
