"""The classifiers for issue 11's cases 5-9, on the bodies the services send today (Groq's 413
TPM as public threads quote it, Bedrock's overflow wordings, mistralai's content chunks, an
empty reasoning reply, Gemini's thoughts-only MAX_TOKENS, Ollama's context refusal)."""

from __future__ import annotations

import json

import pytest

from routing.config import DeploymentConfig
from routing.errors import Disposition, ErrorClass, ProviderError
from routing.models import CompletionRequest
from workers.providers.bedrock_errors import classify_error as bedrock_error
from workers.providers.genai_wire import parse_generate_content
from workers.providers.ollama import OllamaAdapter
from workers.providers.ollama import classify_error as ollama_error
from workers.providers.openai_compat import classify_error, parse_chat_completion
from workers.providers.retry_headers import parse_reset_duration

GROQ_413 = {
    "error": {
        "message": "Request too large for model `llama-3.3-70b-versatile` in organization "
        "`org_01jp8byqwpfx9sp1m0dbhb6a1e` service tier `on_demand` on tokens per minute (TPM): "
        "Limit 6000, Requested 14810, please reduce your message size and try again. Visit "
        "https://console.groq.com/docs/rate-limits for more information.",
        "type": "tokens",
        "code": "rate_limit_exceeded",
    }
}


def body(payload):
    return json.dumps(payload).encode()


# Case 5: Groq's 413 is a tier's tokens per minute, not the model's context


def test_groqs_413_tpm_is_rate_limited_fails_over_at_once_and_cools_by_its_reset_header():
    error = classify_error("groq", 413, body(GROQ_413), {"x-ratelimit-reset-tokens": "7.66s"})
    assert error.error_class is ErrorClass.RATE_LIMITED
    assert error.disposition is Disposition.FAILOVER, "the same request would meet the same 413"
    assert error.retry_after_s == pytest.approx(7.66)
    assert "tokens per minute (TPM)" in error.message


def test_groqs_retry_after_wins_over_its_reset_header():
    headers = {"retry-after": "3", "x-ratelimit-reset-tokens": "1m2s"}
    assert classify_error("groq", 413, body(GROQ_413), headers).retry_after_s == 3


def test_a_413_without_groqs_code_is_still_a_context_overflow():
    error = classify_error("openai", 413, body({"error": {"message": "too big"}}), {})
    assert error.error_class is ErrorClass.CONTEXT_LENGTH


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("7.66s", 7.66), ("2m59.56s", 179.56), ("1h2m3s", 3723), ("250ms", 0.25), ("6m0s", 360)],
)
def test_reset_durations_read_as_openai_and_groq_write_them(value, seconds):
    assert parse_reset_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", [None, "", "soon", "7.66", "-1s", "1s junk"])
def test_unreadable_reset_durations_are_none(value):
    assert parse_reset_duration(value) is None


# Case 6: Bedrock's overflow wordings


@pytest.mark.parametrize(
    "message",
    [
        "input length and `max_tokens` exceed context limit: 199759 + 8192 > 200000, decrease "
        "input length or `max_tokens` and try again",
        "input length and max_tokens exceed context limit: 94607 + 112147 > 204648, decrease "
        "input length or max_tokens and try again",
        "too many total text bytes",
        "Input is too long for requested model.",
    ],
)
def test_bedrocks_context_overflows_are_context_length(message):
    headers = {"x-amzn-ErrorType": "ValidationException:http://internal.amazon.com/coral/"}
    error = bedrock_error(400, body({"message": message}), headers)
    assert error.error_class is ErrorClass.CONTEXT_LENGTH


# Case 7: Magistral's content chunks


def completion(message, finish_reason="stop", usage=None):
    choice = {"index": 0, "message": {"role": "assistant", **message}}
    choice["finish_reason"] = finish_reason
    return body(
        {"id": "c1", "model": "m", "choices": [choice], **({"usage": usage} if usage else {})}
    )


def test_magistral_chunks_keep_the_text_and_drop_the_thinking():
    content = [
        {"type": "thinking", "thinking": [{"type": "text", "text": "Let me think."}]},
        {"type": "text", "text": "The sky is blue "},
        {"type": "text", "text": "because of Rayleigh scattering."},
    ]
    result = parse_chat_completion(completion({"content": content}))
    assert result.text == "The sky is blue because of Rayleigh scattering."
    assert result.finish_reason == "stop"


@pytest.mark.parametrize("content", [["not a chunk"], [{"type": "text", "text": 3}]])
def test_a_chunk_that_breaks_the_protocol_is_invalid_response(content):
    with pytest.raises(ProviderError) as caught:
        parse_chat_completion(completion({"content": content}))
    assert caught.value.error_class is ErrorClass.INVALID_RESPONSE


# Case 9: reasoning spent the budget


def test_an_empty_reply_cut_by_length_is_incomplete_and_says_what_the_reasoning_spent():
    usage = {
        "prompt_tokens": 5,
        "completion_tokens": 32,
        "completion_tokens_details": {"reasoning_tokens": 32},
    }
    with pytest.raises(ProviderError) as caught:
        parse_chat_completion(completion({"content": ""}, "length", usage))
    error = caught.value
    assert error.error_class is ErrorClass.INCOMPLETE
    assert error.disposition is Disposition.FAILOVER
    assert "32 reasoning tokens" in error.message


def test_a_cut_reply_with_some_text_is_still_a_length_success():
    result = parse_chat_completion(completion({"content": "partial"}, "length"))
    assert (result.text, result.finish_reason) == ("partial", "length")


def test_a_length_reply_that_calls_a_tool_is_not_incomplete():
    calls = [{"id": "t", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    result = parse_chat_completion(completion({"content": None, "tool_calls": calls}, "length"))
    assert result.finish_reason == "length"


def gemini_reply(parts, reason, usage):
    content = {"role": "model", **({"parts": parts} if parts is not None else {})}
    return body(
        {"candidates": [{"content": content, "finishReason": reason}], "usageMetadata": usage}
    )


@pytest.mark.parametrize("parts", [None, [{"text": "Considering...", "thought": True}]])
def test_gemini_max_tokens_with_only_thoughts_is_incomplete(parts):
    usage = {"promptTokenCount": 3, "thoughtsTokenCount": 32, "totalTokenCount": 35}
    with pytest.raises(ProviderError) as caught:
        parse_generate_content(gemini_reply(parts, "MAX_TOKENS", usage))
    assert caught.value.error_class is ErrorClass.INCOMPLETE
    assert "32 thinking tokens" in caught.value.message


def test_gemini_max_tokens_with_an_answer_is_a_length_success():
    usage = {"promptTokenCount": 3, "candidatesTokenCount": 2, "totalTokenCount": 5}
    result = parse_generate_content(gemini_reply([{"text": "Hel"}], "MAX_TOKENS", usage))
    assert (result.text, result.finish_reason) == ("Hel", "length")


# Case 8: Ollama reads the whole prompt or refuses it


def ollama_body(context_window):
    deployment = DeploymentConfig(
        id="o", provider="ollama", model="llama3.2", context_window=context_window
    )
    adapter = OllamaAdapter(deployment, base_url="http://gpu-box:11434", api_key=None)
    return json.loads(adapter.build_call(CompletionRequest.from_prompt("hi")).body)


def test_ollama_is_told_not_to_truncate_and_the_deployments_window_as_num_ctx():
    sent = ollama_body(32768)
    assert sent["truncate"] is False
    assert sent["options"] == {"num_ctx": 32768}


def test_ollama_without_a_known_window_keeps_the_servers_num_ctx_but_still_no_truncation():
    sent = ollama_body(None)
    assert sent["truncate"] is False
    assert "options" not in sent


def test_llama_servers_refusal_passed_on_by_ollama_is_context_length():
    detail = {
        "code": 400,
        "message": "request (5480 tokens) exceeds the available context size (4096 tokens), "
        "try increasing it",
        "type": "exceed_context_size_error",
    }
    error = ollama_error(400, body({"error": json.dumps({"error": detail})}), {})
    assert error.error_class is ErrorClass.CONTEXT_LENGTH


def test_ollama_length_with_only_thinking_is_incomplete():
    from workers.providers.ollama import parse_chat_response

    reply = {
        "model": "qwen3",
        "message": {"role": "assistant", "content": "", "thinking": "Hmm, let me see"},
        "done": True,
        "done_reason": "length",
        "eval_count": 32,
    }
    with pytest.raises(ProviderError) as caught:
        parse_chat_response(body(reply))
    assert caught.value.error_class is ErrorClass.INCOMPLETE
