"""The simulators answer ordinary requests as today's services do, for models named like the
real ones (ops.simulator.quirks): the bodies the official SDKs parse, and the refusals."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import openai
import pytest
from mistralai.client.models import AssistantMessage

from ops.simulator import Faults, OpenAISimulator
from ops.simulator.bedrock_sim import BedrockSimulator
from ops.simulator.gemini_sim import GeminiSimulator
from ops.simulator.ollama_sim import OllamaSimulator
from ops.simulator.quirks import go_duration
from ops.simulator.server import ServerThread

LONG = "word " * 24_000  # about 30000 tokens at four characters a token


@pytest.fixture
def serve():
    servers = []

    def start(sim):
        server = ServerThread(sim).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def post(url: str, payload: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            headers = {k.lower(): v for k, v in response.headers.items()}
            return response.status, headers, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        headers = {k.lower(): v for k, v in exc.headers.items()}
        return exc.code, headers, json.loads(exc.read() or b"null")


def test_groq_refuses_a_request_over_its_tiers_tokens_per_minute_with_its_413(serve):
    server = serve(OpenAISimulator(name="groq", models=["llama-3.1-8b-instant"]))
    client = openai.OpenAI(api_key="k", base_url=f"{server.url}/v1", max_retries=0)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(
            model="llama-3.1-8b-instant",
            messages=[{"role": "user", "content": "x" * 20_000}],
            max_tokens=1024,
        )
    assert caught.value.status_code == 413
    error: Any = caught.value.body
    assert (error["type"], error["code"]) == ("tokens", "rate_limit_exceeded")
    assert "on tokens per minute (TPM): Limit 6000, Requested 6024" in error["message"]
    fine = client.chat.completions.create(
        model="llama-3.1-8b-instant", messages=[{"role": "user", "content": "hi"}]
    )
    assert fine.choices[0].message.content


def test_groqs_reset_header_is_a_go_duration():
    assert (go_duration(7.66), go_duration(179.56), go_duration(60)) == (
        "7.66s",
        "2m59.56s",
        "1m0s",
    )


def test_magistral_answers_thinking_and_text_chunks_that_mistralai_reads(serve):
    server = serve(OpenAISimulator(name="mistral", models=["magistral-small-2509"]))
    status, _, body = post(
        f"{server.url}/v1/chat/completions",
        {"model": "magistral-small-2509", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert status == 200
    message = AssistantMessage.model_validate(body["choices"][0]["message"])
    assert isinstance(message.content, list)
    kinds = [getattr(chunk, "type", None) for chunk in message.content]
    assert kinds == ["thinking", "text"]


def test_a_reasoning_model_spends_a_small_budget_thinking_and_answers_nothing(serve):
    server = serve(OpenAISimulator(name="openai", models=["o3"]))
    client = openai.OpenAI(api_key="k", base_url=f"{server.url}/v1", max_retries=0)
    reply = client.chat.completions.create(
        model="o3", messages=[{"role": "user", "content": "hi"}], max_completion_tokens=32
    )
    assert (reply.choices[0].message.content, reply.choices[0].finish_reason) == ("", "length")
    assert reply.usage is not None
    assert reply.usage.completion_tokens_details is not None
    assert reply.usage.completion_tokens_details.reasoning_tokens == 32
    roomy = client.chat.completions.create(
        model="o3", messages=[{"role": "user", "content": "hi"}], max_completion_tokens=1000
    )
    assert roomy.choices[0].message.content
    assert roomy.usage is not None
    assert roomy.usage.completion_tokens_details is not None
    assert roomy.usage.completion_tokens_details.reasoning_tokens == 64


def test_gemini_thinking_that_spends_max_output_tokens_leaves_no_answer_part(serve):
    server = serve(GeminiSimulator(name="gemini", models=["gemini-2.5-pro"]))
    config = {"maxOutputTokens": 32, "thinkingConfig": {"thinkingBudget": 128}}
    status, _, body = post(
        f"{server.url}/v1beta/models/gemini-2.5-pro:generateContent",
        {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "generationConfig": config},
    )
    assert status == 200
    candidate = body["candidates"][0]
    assert candidate["finishReason"] == "MAX_TOKENS"
    assert "parts" not in candidate["content"]
    assert body["usageMetadata"]["thoughtsTokenCount"] == 32


def ollama_chat(server, **fields):
    payload = {"model": "llama3.2", "messages": [{"role": "user", "content": LONG}], **fields}
    return post(f"{server.url}/api/chat", {"stream": False, **payload})


def test_ollama_cuts_an_over_long_prompt_silently_unless_told_not_to(serve):
    server = serve(OllamaSimulator(name="ollama", models=["llama3.2"]))
    status, _, body = ollama_chat(server)
    assert status == 200
    assert body["prompt_eval_count"] < 4096, "cut to the default num_ctx, and nobody told"
    status, _, body = ollama_chat(server, truncate=False)
    assert status == 400
    assert "exceeds the available context size (4096 tokens)" in body["error"]
    status, _, body = ollama_chat(server, truncate=False, options={"num_ctx": 65536})
    assert status == 200
    assert body["prompt_eval_count"] == len(LONG) // 4


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("anthropic.claude-3-haiku-20240307-v1:0", "input length and `max_tokens` exceed context"),
        ("amazon.nova-lite-v1:0", "too many total text bytes"),
    ],
)
def test_bedrock_refuses_a_prompt_over_the_models_window_in_its_words(serve, model, message):
    sim = BedrockSimulator(name="bedrock", models=[model], faults=Faults(context_window=1000))
    server = serve(sim)
    body = {
        "messages": [{"role": "user", "content": [{"text": LONG}]}],
        "inferenceConfig": {"maxTokens": 100},
    }
    status, headers, reply = post(f"{server.url}/model/{model}/converse", body)
    assert status == 400
    assert headers["x-amzn-errortype"].startswith("ValidationException")
    assert reply["message"].startswith(message)
