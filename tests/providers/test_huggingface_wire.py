"""The Hugging Face adapter against its simulators over HTTP: the Inference Providers router
(with the Hub's whoami-v2 as its probe) and a TGI / Inference Endpoint."""

import pytest

from ops.simulator.huggingface_sim import HuggingFaceSimulator, TGISimulator
from routing.errors import ErrorClass, ProviderError
from routing.models import CompletionRequest
from tests.providers.harness import adapter_for, complete, probe, recent, serving, settings

KEY = "hf_wireTest0123456789abcdefGHIJ"
MODEL = "meta-llama/Llama-3.1-8B-Instruct"
MESSAGES = [{"role": "system", "content": "be terse"}, {"role": "user", "content": "hi"}]
REQUEST = CompletionRequest.model_validate(
    {"messages": MESSAGES, "max_tokens": 50, "temperature": 0.5, "top_p": 0.9, "stop": ["END"]}
)


def adapter(server, key=KEY, model=MODEL):
    env = settings(HF_TOKEN=key, HF_ENDPOINT=server.url)
    return adapter_for("huggingface", model, env, base_url=f"{server.url}/v1")


def tgi_adapter(server, key=None):
    env = settings(HF_TOKEN=key) if key else settings()
    return adapter_for("tgi", "tgi", env, base_url=server.url)  # the endpoint's URL, no /v1


@pytest.fixture
def router():
    with serving(HuggingFaceSimulator(name="hf", api_key=KEY, models=[MODEL])) as running:
        yield running


@pytest.fixture
def tgi():
    with serving(TGISimulator(name="tgi", models=["Qwen/Qwen3-8B"])) as running:
        yield running


def test_the_router_request_on_the_wire_and_the_parsed_result(router):
    result = complete(adapter(router), REQUEST)
    (sent,) = recent(router)
    assert (sent["method"], sent["path"]) == ("POST", "/v1/chat/completions")
    assert sent["headers"]["authorization"] == "Bearer [hidden]"
    assert sent["body"] == {
        "model": MODEL,
        "messages": MESSAGES,
        "max_tokens": 50,
        "temperature": 0.5,
        "top_p": 0.9,
        "stop": ["END"],
        "stream": False,
    }
    assert result.text.startswith(f"hf ({MODEL}) answers")
    assert result.usage is not None
    assert result.usage.prompt_tokens > 0


def test_a_provider_suffix_is_sent_as_is(router):
    complete(adapter(router, model=f"{MODEL}:novita"), REQUEST)
    assert recent(router)[0]["body"]["model"] == f"{MODEL}:novita"


def test_a_model_no_enabled_provider_serves_is_model_not_found(router):
    with pytest.raises(ProviderError) as caught:
        complete(adapter(router, model="someone/not-served"), REQUEST)
    assert caught.value.error_class is ErrorClass.MODEL_NOT_FOUND
    assert caught.value.provider_code == "model_not_supported"
    assert "not supported by any provider" in caught.value.message


def test_the_probe_asks_the_hub_who_the_token_is(router):
    probe(adapter(router))
    with pytest.raises(ProviderError) as caught:
        probe(adapter(router, key="hf_wrong0123456789abcdef"))
    assert caught.value.error_class is ErrorClass.AUTH
    assert "Invalid credentials" in caught.value.message


def test_a_fine_grained_token_without_inference_permission_fails_the_probe():
    simulator = HuggingFaceSimulator(name="hf", api_key=KEY, permissions=["repo.content.read"])
    with serving(simulator) as server:
        with pytest.raises(ProviderError) as caught:
            probe(adapter(server))
        simulator.permissions = ["repo.content.read", "inference.serverless.write"]
        probe(adapter(server))
    assert caught.value.error_class is ErrorClass.PERMISSION
    assert "Make calls to Inference Providers" in caught.value.message


def test_tgi_serves_its_model_under_v1_without_a_key(tgi):
    result = complete(tgi_adapter(tgi), REQUEST)
    (sent,) = recent(tgi)
    assert sent["path"] == "/v1/chat/completions"
    assert "authorization" not in sent["headers"]
    assert result.model == "Qwen/Qwen3-8B"
    probe(tgi_adapter(tgi))


def test_tgi_prompt_over_max_total_tokens_is_context_length(tgi):
    long = CompletionRequest.model_validate(
        {"messages": [{"role": "user", "content": "word " * 4000}], "max_tokens": 200}
    )
    with pytest.raises(ProviderError) as caught:
        complete(tgi_adapter(tgi), long)
    assert caught.value.error_class is ErrorClass.CONTEXT_LENGTH
    assert caught.value.status_code == 422
    assert caught.value.provider_code == "validation"


def test_a_protected_inference_endpoint_refuses_a_wrong_token():
    with serving(TGISimulator(name="ep", api_key=KEY)) as server:
        complete(tgi_adapter(server, key=KEY), REQUEST)
        for wrong in (tgi_adapter(server, key="hf_wrong0123456789abcdef"), tgi_adapter(server)):
            with pytest.raises(ProviderError) as caught:
                complete(wrong, REQUEST)
            assert caught.value.error_class is ErrorClass.AUTH
