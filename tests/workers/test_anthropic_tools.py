"""The Anthropic adapter's translation of what the conformance suite cannot send through the SDK
side by side: reasoning effort as a thinking budget, and OpenAI-only fields left out."""

from __future__ import annotations

from routing.models import CompletionRequest
from workers.providers.anthropic import anthropic_body
from workers.providers.anthropic_parts import anthropic_id


def body(**fields):
    request = CompletionRequest.model_validate(
        {"messages": [{"role": "user", "content": "think"}], **fields}
    )
    return anthropic_body(request, model="claude-sonnet-4-5", default_max_tokens=1000)


def test_reasoning_effort_is_a_thinking_budget_added_to_max_tokens_without_temperature():
    sent = body(reasoning_effort="medium", temperature=0.3, max_tokens=500)
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 4096}
    assert sent["max_tokens"] == 4596
    assert "temperature" not in sent
    assert "thinking" not in body(reasoning_effort="none")


def test_openai_only_fields_are_not_sent_and_user_is_metadata():
    sent = body(seed=1, presence_penalty=0.5, frequency_penalty=0.5, logprobs=True, user="u-1")
    assert set(sent) == {"model", "max_tokens", "messages", "metadata"}
    assert sent["metadata"] == {"user_id": "u-1"}


def test_ids_anthropic_accepts_pass_and_others_map_stably():
    assert anthropic_id("call_abc-123") == "call_abc-123"
    mapped = anthropic_id("call:1/x")
    assert mapped == anthropic_id("call:1/x")
    assert mapped != anthropic_id("call:1.x")
    assert mapped.startswith("call_1_x_")
