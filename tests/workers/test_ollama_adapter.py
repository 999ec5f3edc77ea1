"""The Ollama native adapter without a server: the /api/chat request it builds, how it reads the
final object (and refuses a stream), errors, and the /api/tags probe."""

import json

import pytest
from pydantic import SecretStr

from routing.config import DeploymentConfig
from routing.errors import ErrorClass, ProviderError
from routing.models import CompletionRequest
from tests.providers.harness import settings
from workers.http import HttpReply
from workers.providers.ollama import OllamaAdapter, classify_error, parse_chat_response
from workers.providers.registry import build_adapter

REQUEST = CompletionRequest.model_validate(
    {
        "messages": [
            {"role": "system", "content": "be terse"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "again"},
        ],
        "max_tokens": 64,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": ["END"],
    }
)
DEPLOYMENT = DeploymentConfig(id="local", provider="ollama", model="llama3.2")


def adapter(key=None, base="http://gpu-box:11434"):
    return OllamaAdapter(DEPLOYMENT, base_url=base, api_key=SecretStr(key) if key else None)


def reply(status, payload, headers=None):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return HttpReply(status, headers or {}, body, 0.01)


def final(**overrides):
    body = {
        "model": "llama3.2",
        "created_at": "2023-08-04T19:22:45.499127Z",
        "message": {"role": "assistant", "content": "Hello!"},
        "done": True,
        "done_reason": "stop",
        "total_duration": 4883583458,
        "load_duration": 1334875,
        "prompt_eval_count": 26,
        "prompt_eval_duration": 342546000,
        "eval_count": 282,
        "eval_duration": 4535599000,
    }
    body.update(overrides)
    return reply(200, {k: v for k, v in body.items() if v is not None})


def test_the_call_asks_for_one_object_with_options_under_ollama_names():
    call = adapter().build_call(REQUEST)
    assert (call.method, call.url) == ("POST", "http://gpu-box:11434/api/chat")
    assert "authorization" not in call.headers
    assert call.headers["content-type"] == "application/json"
    assert json.loads(call.body) == {
        "model": "llama3.2",
        "messages": [
            {"role": "system", "content": "be terse"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "again"},
        ],
        "stream": False,
        "truncate": False,
        "options": {"num_predict": 64, "temperature": 0.2, "top_p": 0.9, "stop": ["END"]},
    }


def test_a_bare_request_has_no_options_but_still_stream_false():
    body = json.loads(adapter().build_call(CompletionRequest.from_prompt("hi")).body)
    assert body == {
        "model": "llama3.2",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": False,
        "truncate": False,
    }


def test_a_key_is_sent_as_bearer_for_ollama_com():
    call = adapter(key="ol-key-123456", base="https://ollama.com/api").build_call(REQUEST)
    assert call.url == "https://ollama.com/api/chat"
    assert call.headers["authorization"] == "Bearer ol-key-123456"
    assert "ol-key-123456" not in repr(call)


@pytest.mark.parametrize(
    ("env", "url"),
    [
        ({}, "http://localhost:11434/api/chat"),
        ({"OLLAMA_BASE_URL": "http://box:11434/"}, "http://box:11434/api/chat"),
        ({"OLLAMA_BASE_URL": "http://box:11434/v1"}, "http://box:11434/api/chat"),
        ({"OLLAMA_BASE_URL": "https://ollama.com/api"}, "https://ollama.com/api/chat"),
    ],
)
def test_from_settings_uses_the_server_root(env, url):
    built = build_adapter(DEPLOYMENT, settings(**env))
    assert isinstance(built, OllamaAdapter)
    assert built.default_retries == 2
    call = built.build_call(REQUEST)
    assert call.url == url
    assert "authorization" not in call.headers


def test_from_settings_sends_the_key_when_set():
    built = build_adapter(DEPLOYMENT, settings(OLLAMA_API_KEY="ol-1"))
    assert built.build_call(REQUEST).headers["authorization"] == "Bearer ol-1"
    assert built.build_probe().headers["authorization"] == "Bearer ol-1"


def test_the_final_object_is_read_with_its_counts():
    completion = adapter().parse_reply(final())
    assert completion.text == "Hello!"
    assert (completion.finish_reason, completion.provider_finish_reason) == ("stop", "stop")
    assert completion.model == "llama3.2"
    assert completion.usage is not None
    assert completion.usage.model_dump() == {
        "prompt_tokens": 26,
        "completion_tokens": 282,
        "total_tokens": 308,
        "cached_tokens": None,
    }


@pytest.mark.parametrize(
    ("done_reason", "finish", "provider_reason"),
    [("stop", "stop", "stop"), ("length", "length", "length"), (None, "stop", None)],
)
def test_done_reasons(done_reason, finish, provider_reason):
    completion = adapter().parse_reply(final(done_reason=done_reason))
    assert (completion.finish_reason, completion.provider_finish_reason) == (
        finish,
        provider_reason,
    )


@pytest.mark.parametrize("done_reason", ["load", "unload"])
def test_a_load_or_unload_answer_is_not_a_completion(done_reason):
    with pytest.raises(ProviderError) as caught:
        adapter().parse_reply(final(done_reason=done_reason, message={"role": "assistant"}))
    assert caught.value.error_class is ErrorClass.INVALID_RESPONSE


def test_a_cached_prompt_without_prompt_eval_count_counts_zero():
    completion = adapter().parse_reply(final(prompt_eval_count=None))
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (0, 282)
    assert adapter().parse_reply(final(prompt_eval_count=None, eval_count=None)).usage is None


def test_a_streamed_reply_is_refused_not_half_read():
    lines = [
        {"model": "llama3.2", "message": {"role": "assistant", "content": "Hel"}, "done": False},
        {"model": "llama3.2", "message": {"role": "assistant", "content": ""}, "done": True},
    ]
    ndjson = "".join(json.dumps(line) + "\n" for line in lines).encode()
    with pytest.raises(ProviderError) as caught:
        adapter().parse_reply(reply(200, ndjson))
    assert caught.value.error_class is ErrorClass.INVALID_RESPONSE
    assert "NDJSON" in caught.value.message


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"model": "m", "message": {"content": "Hel"}, "done": False}).encode(),
        json.dumps({"model": "m", "message": {"content": 5}, "done": True}).encode(),
        json.dumps({"model": "m", "done": True}).encode(),
        b'{"model": "m", "message": {"content": "cut',
        b"[1, 2]",
    ],
)
def test_a_body_that_is_not_a_finished_chat_is_invalid(body):
    with pytest.raises(ProviderError) as caught:
        adapter().parse_reply(reply(200, body))
    assert caught.value.error_class is ErrorClass.INVALID_RESPONSE


def test_an_error_object_in_a_200_is_a_server_error():
    with pytest.raises(ProviderError) as caught:
        adapter().parse_reply(reply(200, {"error": "an error was encountered while running"}))
    assert caught.value.error_class is ErrorClass.SERVER_ERROR


@pytest.mark.parametrize(
    ("status", "message", "error_class"),
    [
        (400, "the input length exceeds the context length", ErrorClass.CONTEXT_LENGTH),
        (400, '"nomic-embed-text" does not support chat', ErrorClass.MODEL_NOT_FOUND),
        (400, "invalid model name", ErrorClass.MODEL_NOT_FOUND),
        (400, "model is required", ErrorClass.BAD_REQUEST),
        (401, "unauthorized", ErrorClass.AUTH),
        (403, "remote inference is unavailable", ErrorClass.PERMISSION),
        (404, "model 'x' not found, try pulling it first", ErrorClass.MODEL_NOT_FOUND),
        (429, "too many requests", ErrorClass.RATE_LIMITED),
        (499, "request canceled", ErrorClass.SERVER_ERROR),
        (500, "the model failed to generate a response", ErrorClass.SERVER_ERROR),
        (502, "cloud model is unreachable", ErrorClass.SERVER_ERROR),
        (503, "server busy, please try again.", ErrorClass.OVERLOADED),
        (504, "gateway timeout", ErrorClass.TIMEOUT),
        (405, "method not allowed", ErrorClass.INVALID_RESPONSE),
    ],
)
def test_error_classification(status, message, error_class):
    error = classify_error(status, json.dumps({"error": message}).encode(), {"retry-after": "2"})
    assert error.error_class is error_class
    assert (error.status_code, error.retry_after_s) == (status, 2.0)
    assert message in error.message


def test_a_non_json_error_keeps_its_text():
    with pytest.raises(ProviderError) as caught:
        adapter().parse_reply(reply(404, b"404 page not found"))
    assert caught.value.error_class is ErrorClass.MODEL_NOT_FOUND
    assert "404 page not found" in caught.value.message


def test_the_probe_lists_the_models():
    probe = adapter(key="ol-key").build_probe()
    assert (probe.method, probe.url, probe.body) == ("GET", "http://gpu-box:11434/api/tags", b"")
    assert probe.headers["authorization"] == "Bearer ol-key"
    adapter().read_probe(reply(200, {"models": []}))


@pytest.mark.parametrize(
    ("status", "body", "error_class"),
    [
        (200, {"version": "0.12.0"}, ErrorClass.INVALID_RESPONSE),
        (200, b"Ollama is running", ErrorClass.INVALID_RESPONSE),
        (401, {"error": "unauthorized"}, ErrorClass.AUTH),
        (500, {"error": "boom"}, ErrorClass.SERVER_ERROR),
    ],
)
def test_a_probe_that_does_not_list_models_raises(status, body, error_class):
    with pytest.raises(ProviderError) as caught:
        adapter().read_probe(reply(status, body))
    assert caught.value.error_class is error_class


@pytest.mark.parametrize("reason", [["stop"], {"why": "stop"}, 5])
def test_an_odd_done_reason_is_read_as_stop_without_crashing(reason):
    body = json.dumps(
        {
            "model": "m",
            "message": {"role": "assistant", "content": "hi"},
            "done": True,
            "done_reason": reason,
        }
    ).encode()
    result = parse_chat_response(body)
    assert (result.text, result.finish_reason, result.provider_finish_reason) == (
        "hi",
        "stop",
        None,
    )
