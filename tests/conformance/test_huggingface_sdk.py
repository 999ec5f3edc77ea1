"""Conformance with huggingface_hub's ``InferenceClient.chat_completion``: pointed at the
simulators (the router and a TGI), the SDK sends what our adapter sends for the same input, and
both read the replies the same way."""

from typing import Any

import pytest
from huggingface_hub import InferenceClient
from huggingface_hub.errors import HfHubHTTPError

from ops.simulator.huggingface_sim import HuggingFaceSimulator, TGISimulator
from routing.errors import ErrorClass, ProviderError
from routing.models import CompletionRequest
from tests.providers.harness import adapter_for, complete, recent, serving, settings

KEY = "hf_conformance0123456789abcdefGHIJ"
MODEL = "meta-llama/Llama-3.1-8B-Instruct"
MESSAGES: Any = [{"role": "system", "content": "be terse"}, {"role": "user", "content": "Hi"}]
PARAMS: Any = {"max_tokens": 64, "temperature": 0.2, "top_p": 0.8, "stop": ["END"]}
REQUEST = CompletionRequest.model_validate({"messages": MESSAGES, **PARAMS})


@pytest.fixture
def router():
    with serving(HuggingFaceSimulator(name="hf", api_key=KEY, models=[MODEL])) as running:
        yield running


def ours(base_url: str, provider: str = "huggingface", model: str = MODEL, key: str = KEY):
    return adapter_for(provider, model, settings(HF_TOKEN=key), base_url=base_url)


def test_the_router_request_is_the_sdks(router):
    sdk = InferenceClient(base_url=f"{router.url}/v1", api_key=KEY)
    theirs_result = sdk.chat_completion(MESSAGES, model=MODEL, **PARAMS)
    mine_result = complete(ours(f"{router.url}/v1"), REQUEST)
    theirs, mine = recent(router)
    assert (mine["method"], mine["path"]) == (theirs["method"], theirs["path"])
    assert mine["headers"]["authorization"] == theirs["headers"]["authorization"]
    assert mine["headers"]["content-type"] == theirs["headers"]["content-type"]
    assert mine["body"] == theirs["body"]
    assert mine_result.text == theirs_result.choices[0].message.content
    assert mine_result.usage is not None
    assert mine_result.usage.total_tokens == theirs_result.usage.total_tokens


def test_a_model_no_provider_serves_fails_both_the_same_way(router):
    sdk = InferenceClient(base_url=f"{router.url}/v1", api_key=KEY)
    with pytest.raises(HfHubHTTPError) as theirs:
        sdk.chat_completion(MESSAGES, model="someone/unserved", **PARAMS)
    with pytest.raises(ProviderError) as mine:
        complete(ours(f"{router.url}/v1", model="someone/unserved"), REQUEST)
    assert theirs.value.response.status_code == mine.value.status_code == 400
    assert mine.value.error_class is ErrorClass.MODEL_NOT_FOUND
    assert "not supported by any provider" in str(theirs.value)


def test_a_tgi_endpoint_request_is_the_sdks():
    """An endpoint's URL without /v1: the SDK and the adapter both add /v1/chat/completions."""
    with serving(TGISimulator(name="tgi", api_key=KEY, models=["Qwen/Qwen3-8B"])) as server:
        sdk = InferenceClient(base_url=server.url, api_key=KEY)
        theirs_result = sdk.chat_completion(MESSAGES, model="tgi", **PARAMS)
        mine_result = complete(ours(server.url, provider="tgi", model="tgi"), REQUEST)
        theirs, mine = recent(server)
    assert (mine["method"], mine["path"]) == (theirs["method"], theirs["path"])
    assert mine["path"] == "/v1/chat/completions"
    assert mine["body"] == theirs["body"]
    assert mine_result.text == theirs_result.choices[0].message.content
    assert mine_result.model == theirs_result.model == "Qwen/Qwen3-8B"
