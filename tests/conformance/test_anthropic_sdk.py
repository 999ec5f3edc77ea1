"""Conformance with the official anthropic SDK: for the same prompt, our adapter sends what the
SDK sends, and both read the simulator's replies the same way (text, stop reason, usage, error
type).

Two deliberate differences, pinned here so a change on either side is noticed: anthropic SDK 2.x
sends its API key as ``Authorization: Bearer`` with ``anthropic-version: 2026-10-21``, and its
``messages.create`` has no ``temperature``/``top_p``. The adapter keeps the documented
``x-api-key`` with ``2023-06-01``, the version whose response shape (and sampling parameters) it
was written against; see workers/providers/anthropic.py.
"""

from typing import Any

import anthropic
import pytest

from ops.simulator.anthropic_sim import AnthropicSimulator
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

KEY = "fake-anthropic-conformance-key"
MODEL = "claude-conformance-test"
MESSAGES: Any = [{"role": "user", "content": "Hi there"}]
REQUEST = CompletionRequest.model_validate(
    {
        "messages": [{"role": "system", "content": "be terse"}, *MESSAGES],
        "max_tokens": 64,
        "stop": ["END"],
    }
)


@pytest.fixture
def server():
    with serving(AnthropicSimulator(name="ant", api_key=KEY)) as running:
        yield running


def sdk(server, key=KEY):
    return anthropic.Anthropic(api_key=key, base_url=server.url, max_retries=0)


def ours(server, key=KEY):
    return adapter_for("anthropic", MODEL, settings(ANTHROPIC_API_KEY=key), base_url=server.url)


def sdk_create(server, **overrides):
    fields: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 64,
        "system": "be terse",
        "messages": MESSAGES,
        "stop_sequences": ["END"],
        **overrides,
    }
    return sdk(server).messages.create(**fields)


def test_the_adapter_sends_what_the_sdk_sends(server):
    sdk_create(server)
    complete(ours(server), REQUEST)
    theirs, mine = recent(server)
    assert (mine["method"], mine["path"], mine["query"]) == (
        theirs["method"],
        theirs["path"],
        theirs["query"],
    )
    for header in ("content-type", "accept"):
        assert mine["headers"][header] == theirs["headers"][header]
    assert mine["body"] == theirs["body"]


def test_auth_and_version_headers_differ_from_sdk_2x_as_pinned(server):
    sdk_create(server)
    complete(ours(server), REQUEST)
    theirs, mine = (sent["headers"] for sent in recent(server))
    assert (theirs["authorization"], theirs["anthropic-version"]) == (
        "Bearer [hidden]",
        "2026-10-21",
    )
    assert "x-api-key" not in theirs
    assert (mine["x-api-key"], mine["anthropic-version"]) == ("(value) [hidden]", "2023-06-01")
    assert "authorization" not in mine


def test_sdk_2x_cannot_send_sampling_parameters_the_adapter_sends():
    fields: dict[str, Any] = {"model": MODEL, "max_tokens": 1, "messages": MESSAGES}
    client = anthropic.Anthropic(api_key=KEY, base_url="http://127.0.0.1:9", max_retries=0)
    create: Any = client.messages.create  # the point is calling it with what it does not take
    for sampling in ({"temperature": 0.2}, {"top_p": 0.9}):
        with pytest.raises(TypeError, match=next(iter(sampling))):
            create(**fields, **sampling)


@pytest.mark.parametrize(
    ("overrides", "stop_reason"),
    [
        ({}, "end_turn"),
        ({"max_tokens": 3}, "max_tokens"),
        ({"stop_sequences": ["answers"]}, "stop_sequence"),
    ],
)
def test_both_read_a_message_the_same_way(server, overrides, stop_reason):
    theirs = sdk_create(server, **overrides)
    request = REQUEST.model_copy(
        update={
            "max_tokens": overrides.get("max_tokens", 64),
            "stop": overrides.get("stop_sequences", ["END"]),
        }
    )
    mine = complete(ours(server), request)
    assert theirs.stop_reason == stop_reason
    assert mine.text == "".join(b.text for b in theirs.content if b.type == "text")
    assert mine.provider_finish_reason == theirs.stop_reason
    assert (mine.model, mine.response_id is not None) == (theirs.model, True)
    assert mine.usage is not None
    assert mine.usage.prompt_tokens == (
        theirs.usage.input_tokens
        + (theirs.usage.cache_creation_input_tokens or 0)
        + (theirs.usage.cache_read_input_tokens or 0)
    )
    assert mine.usage.completion_tokens == theirs.usage.output_tokens
    assert mine.usage.cached_tokens == theirs.usage.cache_read_input_tokens


@pytest.mark.parametrize(
    ("status", "sdk_error", "error_class"),
    [
        (400, anthropic.BadRequestError, ErrorClass.BAD_REQUEST),
        (401, anthropic.AuthenticationError, ErrorClass.AUTH),
        (402, anthropic.PaymentRequiredError, ErrorClass.PERMISSION),
        (403, anthropic.PermissionDeniedError, ErrorClass.PERMISSION),
        (404, anthropic.NotFoundError, ErrorClass.MODEL_NOT_FOUND),
        (413, anthropic.ContentTooLargeError, ErrorClass.CONTEXT_LENGTH),
        (429, anthropic.RateLimitError, ErrorClass.RATE_LIMITED),
        (500, anthropic.InternalServerError, ErrorClass.SERVER_ERROR),
        (503, anthropic.ServiceUnavailableError, ErrorClass.SERVER_ERROR),
        (504, anthropic.GatewayTimeoutError, ErrorClass.TIMEOUT),
        (529, anthropic.OverloadedError, ErrorClass.OVERLOADED),
    ],
)
def test_both_read_an_error_the_same_way(server, status, sdk_error, error_class):
    set_faults(server, fail_rate=1.0, fail_status=status)
    with pytest.raises(anthropic.APIStatusError) as theirs:
        sdk_create(server)
    assert type(theirs.value) is sdk_error  # exactly: OverloadedError is an InternalServerError
    with pytest.raises(ProviderError) as mine:
        complete(ours(server), REQUEST)
    assert mine.value.error_class is error_class
    assert mine.value.provider_code == theirs.value.type
    assert mine.value.status_code == theirs.value.status_code == status


def test_a_wrong_key_is_an_authentication_error_to_both(server):
    wrong = "fake-anthropic-wrong-key-0123"
    with pytest.raises(anthropic.AuthenticationError):
        sdk(server, wrong).messages.create(model=MODEL, max_tokens=8, messages=MESSAGES)
    with pytest.raises(anthropic.AuthenticationError):
        sdk(server, wrong).models.list(limit=1)
    with pytest.raises(ProviderError) as caught:
        complete(ours(server, wrong), REQUEST)
    assert caught.value.error_class is ErrorClass.AUTH
    with pytest.raises(ProviderError) as probed:
        probe(ours(server, wrong))
    assert probed.value.error_class is ErrorClass.AUTH


def test_both_accept_the_models_list_as_proof_of_the_key(server):
    assert [m.id for m in sdk(server).models.list(limit=1).data] == ["sim-model"]
    probe(ours(server))
