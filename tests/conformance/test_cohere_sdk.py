"""Conformance with the official cohere SDK (``cohere.ClientV2``, retries off): for the same
prompt our adapter sends what the SDK sends, and both read the simulator's replies the same way
(text, usage, error type). The SDK proves the simulator speaks Cohere's v2 wire format, and the
simulator proves the adapter does."""

from typing import Any

import cohere
import pytest
from cohere.base_client import BaseCohere
from cohere.core.api_error import ApiError

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
    set_faults,
    settings,
)

KEY = "co-conformance-0123456789abcdef"
MODEL = "command-a-03-2025"
MESSAGES: Any = [{"role": "system", "content": "be terse"}, {"role": "user", "content": "Hi there"}]
REQUEST = CompletionRequest.model_validate(
    {"messages": MESSAGES, "max_tokens": 64, "temperature": 0.2, "top_p": 0.8, "stop": ["END"]}
)
# The SDK's generated models still use pydantic v1's ``__fields__``.
pytestmark = pytest.mark.filterwarnings("ignore:The `__fields__` attribute is deprecated")

#: Headers every HTTP client sets its own way, and the SDK's self-description.
TRANSPORT_HEADERS = {"host", "accept", "accept-encoding", "connection", "content-length"}


@pytest.fixture
def server():
    with serving(CohereSimulator(name="co", api_key=KEY)) as running:
        yield running


def sdk(server, key=KEY):
    return cohere.ClientV2(api_key=key, base_url=server.url, max_retries=0)


def ours(server, key=KEY):
    return adapter_for("cohere", MODEL, settings(COHERE_API_KEY=key), base_url=server.url)


def sdk_chat(server, key=KEY):
    return sdk(server, key).chat(
        model=MODEL,
        messages=MESSAGES,
        max_tokens=64,
        temperature=0.2,
        p=0.8,
        stop_sequences=["END"],
    )


def test_the_adapter_sends_what_the_sdk_sends(server):
    sdk_chat(server)
    complete(ours(server), REQUEST)
    theirs, mine = recent(server)
    assert (mine["method"], mine["path"], mine["query"]) == (
        theirs["method"],
        theirs["path"],
        theirs["query"],
    )
    assert mine["headers"]["authorization"] == theirs["headers"]["authorization"]
    assert mine["headers"]["authorization"] == "Bearer [hidden]"
    assert mine["headers"]["content-type"] == theirs["headers"]["content-type"]
    assert mine["body"] == theirs["body"]
    assert theirs["body"]["stream"] is False


def test_both_send_the_key_the_same_way(server):
    """Same auth header name and scheme, and nothing else that carries a credential."""
    sdk_chat(server)
    complete(ours(server), REQUEST)
    theirs, mine = recent(server)
    credential = {"authorization", "x-api-key", "api-key"}
    assert set(theirs["headers"]) & credential == set(mine["headers"]) & credential
    assert not {n for n in mine["headers"] if n not in TRANSPORT_HEADERS} - set(theirs["headers"])


def test_both_read_a_completion_the_same_way(server):
    theirs = sdk_chat(server)
    mine = complete(ours(server), REQUEST)
    assert mine.text == "".join(block.text for block in theirs.message.content)
    assert mine.provider_finish_reason == theirs.finish_reason == "COMPLETE"
    assert mine.response_id
    assert theirs.id
    assert mine.usage is not None
    billed = theirs.usage.billed_units
    assert (mine.usage.prompt_tokens, mine.usage.completion_tokens) == (
        billed.input_tokens,
        billed.output_tokens,
    )
    assert mine.usage.cached_tokens == theirs.usage.cached_tokens
    assert theirs.usage.tokens.input_tokens > billed.input_tokens  # the template, not billed


def test_both_read_a_cut_reply_the_same_way(server):
    theirs = sdk(server).chat(model=MODEL, messages=MESSAGES, max_tokens=2)
    mine = complete(
        ours(server), CompletionRequest.model_validate({"messages": MESSAGES, "max_tokens": 2})
    )
    assert mine.provider_finish_reason == theirs.finish_reason == "MAX_TOKENS"
    assert mine.finish_reason == "length"
    assert mine.text == theirs.message.content[0].text


@pytest.mark.parametrize(
    ("status", "sdk_error", "error_class"),
    [
        (400, cohere.BadRequestError, ErrorClass.BAD_REQUEST),
        (401, cohere.UnauthorizedError, ErrorClass.AUTH),
        (402, ApiError, ErrorClass.PERMISSION),  # the SDK has no class for 402
        (404, cohere.NotFoundError, ErrorClass.MODEL_NOT_FOUND),
        (422, cohere.UnprocessableEntityError, ErrorClass.BAD_REQUEST),
        (429, cohere.TooManyRequestsError, ErrorClass.RATE_LIMITED),
        (498, cohere.InvalidTokenError, ErrorClass.AUTH),
        (500, cohere.InternalServerError, ErrorClass.SERVER_ERROR),
        (503, cohere.ServiceUnavailableError, ErrorClass.OVERLOADED),
        (504, cohere.GatewayTimeoutError, ErrorClass.TIMEOUT),
    ],
)
def test_both_read_an_error_the_same_way(server, status, sdk_error, error_class):
    set_faults(server, fail_rate=1.0, fail_status=status)
    with pytest.raises(ApiError) as raised:
        sdk_chat(server)
    assert type(raised.value) is sdk_error
    assert raised.value.status_code == status
    assert set(raised.value.body) == {"id", "message"}
    with pytest.raises(ProviderError) as caught:
        complete(ours(server), REQUEST)
    assert caught.value.error_class is error_class
    assert raised.value.body["message"] in caught.value.message


def test_a_wrong_key_is_an_authentication_error_to_both(server):
    wrong = "co-wrong-0123456789abcdef"
    with pytest.raises(cohere.UnauthorizedError):
        sdk_chat(server, key=wrong)
    with pytest.raises(ProviderError) as caught:
        complete(ours(server, key=wrong), REQUEST)
    assert caught.value.error_class is ErrorClass.AUTH


def test_the_key_check_agrees_with_the_sdk(server):
    """``ClientV2.check_api_key`` is deprecated in the SDK; its generated base client still
    calls the endpoint, which is what our probe calls."""
    assert BaseCohere(token=KEY, base_url=server.url, max_retries=0).check_api_key().valid
    probe(ours(server))
    wrong = "co-wrong-0123456789abcdef"
    with pytest.raises(cohere.UnauthorizedError):
        BaseCohere(token=wrong, base_url=server.url, max_retries=0).check_api_key()
    with pytest.raises(ProviderError) as caught:
        probe(ours(server, key=wrong))
    assert caught.value.error_class is ErrorClass.AUTH
    assert control(server, "state")["stats"]["requests"]["/v1/check-api-key"] == 4
