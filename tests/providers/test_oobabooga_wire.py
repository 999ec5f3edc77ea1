"""Text Generation WebUI (oobabooga) through the OpenAI-compatible adapter, against its
simulator: one loaded model whatever the body names, FastAPI's own 401, the --api-key."""

import pytest

from ops.simulator.oobabooga_sim import OobaboogaSimulator
from routing.errors import ErrorClass, ProviderError
from routing.models import CompletionRequest
from tests.providers.harness import adapter_for, complete, probe, recent, serving, settings

KEY = "ooba-wire-test-0123456789"
LOADED = "Qwen3-8B-Q4_K_M.gguf"
REQUEST = CompletionRequest.model_validate(
    {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 40, "temperature": 0.7}
)


def adapter(server, key=None, model="local"):
    env = settings(OOBABOOGA_API_KEY=key) if key else settings()
    return adapter_for("oobabooga", model, env, base_url=f"{server.url}/v1")


def test_the_loaded_model_answers_whatever_the_body_names():
    with serving(OobaboogaSimulator(name="tgw", models=[LOADED])) as server:
        result = complete(adapter(server), REQUEST)
        probe(adapter(server))
        (sent,) = recent(server)
    assert (sent["method"], sent["path"]) == ("POST", "/v1/chat/completions")
    assert "authorization" not in sent["headers"]
    assert sent["body"] == {
        "model": "local",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 40,
        "temperature": 0.7,
    }
    assert result.model == LOADED
    assert result.text.startswith(f"tgw ({LOADED}) answers")


def test_the_base_url_variable_may_name_the_server_root():
    with serving(OobaboogaSimulator(name="tgw")) as server:
        made = adapter_for("oobabooga", "local", settings(OOBABOOGA_API_BASE=server.url))
        complete(made, REQUEST)
        assert recent(server)[0]["path"] == "/v1/chat/completions"


def test_an_api_key_server_refuses_a_wrong_or_missing_key_with_fastapis_401():
    with serving(OobaboogaSimulator(name="tgw", api_key=KEY)) as server:
        complete(adapter(server, key=KEY), REQUEST)
        for wrong in (adapter(server, key="ooba-wrong-0123456789"), adapter(server)):
            for act in (lambda a: complete(a, REQUEST), probe):
                with pytest.raises(ProviderError) as caught:
                    act(wrong)
                assert caught.value.error_class is ErrorClass.AUTH
                assert "Unauthorized" in caught.value.message
