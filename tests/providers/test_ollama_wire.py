"""The Ollama native adapter against the Ollama simulator over HTTP: the request on the wire,
the parsed result, the default NDJSON stream a request without ``stream: false`` gets, and every
failure the simulator can inject, locally and as ollama.com (with a key)."""

import dataclasses
import json

import pytest

from ops.simulator.ollama_sim import OllamaSimulator
from routing.errors import ErrorClass, ProviderError
from routing.models import CompletionRequest
from tests.providers.harness import (
    TRANSPORT,
    adapter_for,
    complete,
    probe,
    recent,
    serving,
    settings,
)

KEY = "ol-wire-test-0123456789abcdef"
MESSAGES = [{"role": "system", "content": "be terse"}, {"role": "user", "content": "hi"}]
REQUEST = CompletionRequest.model_validate(
    {"messages": MESSAGES, "max_tokens": 50, "temperature": 0.5, "top_p": 0.9, "stop": ["END"]}
)


@pytest.fixture
def local():
    with serving(OllamaSimulator(name="ol", models=["llama3.2:latest", "qwen3:8b"])) as running:
        yield running


@pytest.fixture
def cloud():
    with serving(OllamaSimulator(name="cloud", api_key=KEY, models=["gpt-oss:120b"])) as running:
        yield running


def adapter(server, model="llama3.2", **env):
    return adapter_for("ollama", model, settings(**env), base_url=server.url)


def test_the_request_on_the_wire_and_the_parsed_result(local):
    result = complete(adapter(local), REQUEST)
    (sent,) = recent(local)
    assert (sent["method"], sent["path"], sent["query"]) == ("POST", "/api/chat", {})
    assert "authorization" not in sent["headers"]
    assert sent["headers"]["content-type"] == "application/json"
    assert sent["body"] == {
        "model": "llama3.2",
        "messages": MESSAGES,
        "stream": False,
        "truncate": False,
        "options": {"num_predict": 50, "temperature": 0.5, "top_p": 0.9, "stop": ["END"]},
    }
    assert result.text.startswith("ol (llama3.2) answers")
    assert (result.finish_reason, result.provider_finish_reason) == ("stop", "stop")
    assert result.model == "llama3.2"
    assert result.usage is not None
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (
        3,
        len(result.text) // 4,
    )


def test_num_predict_and_stop_end_the_reply(local):
    cut = complete(
        adapter(local), CompletionRequest.model_validate({"messages": MESSAGES, "max_tokens": 2})
    )
    assert (cut.finish_reason, cut.provider_finish_reason, len(cut.text)) == ("length", "length", 8)
    stopped = complete(
        adapter(local),
        CompletionRequest.model_validate({"messages": MESSAGES, "stop": ["answers"]}),
    )
    assert (stopped.text, stopped.finish_reason) == ("ol (llama3.2) ", "stop")


def test_a_request_without_stream_false_gets_ndjson_and_is_not_mistaken_for_a_completion(local):
    ours = adapter(local)
    call = ours.build_call(REQUEST)
    body = json.loads(call.body)
    del body["stream"]
    streamed = TRANSPORT.send(
        dataclasses.replace(call, body=json.dumps(body).encode()), timeout_s=5
    )
    assert streamed.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in streamed.body.splitlines()]
    assert len(lines) > 2
    assert [line["done"] for line in lines] == [False] * (len(lines) - 1) + [True]
    assert lines[-1]["done_reason"] == "stop"
    assert lines[-1]["eval_count"] > 0
    text = "".join(line["message"]["content"] for line in lines)
    assert text == complete(ours, REQUEST).text
    with pytest.raises(ProviderError) as caught:
        ours.parse_reply(streamed)
    assert caught.value.error_class is ErrorClass.INVALID_RESPONSE


def test_an_unknown_model_is_model_not_found(local):
    complete(adapter(local, model="qwen3:8b"), REQUEST)
    with pytest.raises(ProviderError) as caught:
        complete(adapter(local, model="mistral"), REQUEST)
    assert caught.value.error_class is ErrorClass.MODEL_NOT_FOUND
    assert "model 'mistral' not found" in caught.value.message


def test_the_local_probe_needs_no_key(local):
    probe(adapter(local))


def test_ollama_com_takes_the_key_as_bearer(cloud):
    result = complete(adapter(cloud, model="gpt-oss:120b", OLLAMA_API_KEY=KEY), REQUEST)
    assert result.text.startswith("cloud (gpt-oss:120b)")
    assert recent(cloud)[0]["headers"]["authorization"] == "Bearer [hidden]"
    probe(adapter(cloud, model="gpt-oss:120b", OLLAMA_API_KEY=KEY))
