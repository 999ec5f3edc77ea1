"""The simulators refuse malformed tool conversations as the services do, in their words."""

from __future__ import annotations

from typing import Any

import httpx

from ops.simulator.anthropic_sim import AnthropicSimulator
from ops.simulator.openai_sim import OpenAISimulator
from tests.providers.harness import serving

CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}


def openai_answer(messages: list[dict[str, Any]]) -> httpx.Response:
    with serving(OpenAISimulator(name="oai", api_key=None)) as server:
        return httpx.post(
            f"{server.url}/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": messages},
            timeout=5,
        )


def test_openai_refuses_a_tool_message_answering_nothing_and_unanswered_calls():
    orphan = openai_answer(
        [{"role": "user", "content": "hi"}, {"role": "tool", "tool_call_id": "x", "content": "1"}]
    )
    assert orphan.status_code == 400
    assert orphan.json()["error"]["param"] == "messages.[1].role"
    assert "must be a response to a preceeding message with 'tool_calls'" in orphan.text
    unanswered = openai_answer(
        [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": None, "tool_calls": [CALL]},
            {"role": "user", "content": "well?"},
        ]
    )
    assert unanswered.status_code == 400
    assert "did not have response messages: call_1" in unanswered.text


def anthropic_answer(messages: list[dict[str, Any]]) -> httpx.Response:
    with serving(AnthropicSimulator(name="ant", api_key=None)) as server:
        return httpx.post(
            f"{server.url}/v1/messages",
            json={"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": messages},
            headers={"anthropic-version": "2023-06-01"},
            timeout=5,
        )


def test_anthropic_refuses_bad_ids_and_unpaired_tool_blocks():
    use = {"type": "tool_use", "id": "call:1", "name": "f", "input": {}}
    bad_id = anthropic_answer(
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": [use]}]
    )
    assert bad_id.status_code == 400
    assert "String should match pattern '^[a-zA-Z0-9_-]+$'" in bad_id.text
    stray = anthropic_answer(
        [
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "4"}],
            }
        ]
    )
    assert stray.status_code == 400
    assert "unexpected `tool_use_id` found in `tool_result` blocks: toolu_1" in stray.text
    good = {**use, "id": "toolu_1"}
    unanswered = anthropic_answer(
        [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [good]},
            {"role": "user", "content": "well?"},
        ]
    )
    assert unanswered.status_code == 400
    assert "`tool_use` ids were found without `tool_result` blocks" in unanswered.text


def test_openai_refuses_a_tool_call_id_over_40_characters():
    long_call = {**CALL, "id": "x" * 41}
    refused = openai_answer(
        [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": None, "tool_calls": [long_call]},
            {"role": "tool", "tool_call_id": "x" * 41, "content": "1"},
        ]
    )
    assert refused.status_code == 400
    assert "Expected a string with maximum length 40" in refused.text
