"""The request beyond text, checked at the producer: tools, tool turns, schemas, images; what a
request needs of a model, and the check of a reply against its schema."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from pydantic import ValidationError

from routing.capability_fit import check_capable, lacks
from routing.chat_parts import MAX_IMAGE_DATA_CHARS
from routing.config import parse_config
from routing.errors import InvalidOutput, InvalidRequest
from routing.models import CompletionRequest, ProviderCompletion, RoutingPolicy
from routing.output_check import checked_output
from routing.planning import plan_candidates

TOOL: dict[str, Any] = {
    "type": "function",
    "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
}
CALL = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
SCHEMA = {
    "type": "object",
    "properties": {"n": {"type": "integer"}},
    "required": ["n"],
}


def request(**fields: Any) -> CompletionRequest:
    return CompletionRequest.model_validate(
        {"messages": [{"role": "user", "content": "hi"}], **fields}
    )


def refusal(**fields: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        request(**fields)
    return str(caught.value)


def test_a_tool_whose_parameters_are_not_json_schema_is_refused():
    bad = {"type": "function", "function": {"name": "f", "parameters": {"type": "objekt"}}}
    assert "parameters is not valid JSON Schema" in refusal(tools=[bad])
    assert "String should match pattern" in refusal(
        tools=[{"type": "function", "function": {"name": "no spaces"}}]
    )


def test_a_json_schema_that_is_not_valid_is_refused():
    form = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"required": "n"}}}
    assert "json_schema.schema is not valid JSON Schema" in refusal(response_format=form)
    assert "json_schema is required" in refusal(response_format={"type": "json_schema"})


def image(url: str) -> list[dict[str, Any]]:
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "see"},
                {"type": "image_url", "image_url": {"url": url}},
            ],
        }
    ]


def test_an_image_url_must_be_https_or_data_and_within_the_limit():
    assert "https:// URL" in refusal(messages=image("http://example.com/a.png"))
    assert "https:// URL" in refusal(messages=image("file:///etc/passwd"))
    assert "not valid base64" in refusal(messages=image("data:image/png;base64,@@@"))
    assert "image/tiff is not one of" in refusal(messages=image("data:image/tiff;base64,AAAA"))
    big = "data:image/png;base64," + "A" * MAX_IMAGE_DATA_CHARS
    assert "over the limit" in refusal(messages=image(big))
    ok = request(messages=image("data:image/png;base64," + base64.b64encode(b"png").decode()))
    assert ok.needs == ["images"]
    assert ok.messages[0].content == "see"


def test_a_tool_message_must_answer_a_preceding_tool_call():
    orphan = [
        {"role": "user", "content": "hi"},
        {"role": "tool", "tool_call_id": "call_9", "content": "42"},
    ]
    assert "which no preceding assistant tool_calls has" in refusal(messages=orphan)
    wrong_id = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_2", "content": "42"},
    ]
    assert "'call_2'" in refusal(messages=wrong_id, tools=[TOOL])
    assert "tool_call_id" in refusal(messages=[{"role": "tool", "content": "42"}])


def test_tool_choice_must_name_a_tool_offered():
    named = {"type": "function", "function": {"name": "other"}}
    assert "not in tools" in refusal(tools=[TOOL], tool_choice=named)
    assert "tool_choice needs tools" in refusal(tool_choice="required")


def test_what_a_request_needs_and_the_record_round_trip():
    full = request(
        messages=[
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": None, "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "call_1", "content": "42"},
        ],
        tools=[TOOL],
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA}},
        reasoning_effort="low",
    )
    assert full.needs == ["tools", "json_schema", "reasoning"]
    assert full.output_schema == SCHEMA
    assert CompletionRequest.model_validate_json(full.model_dump_json()) == full


CONFIG = parse_config(
    {
        "deployments": [
            {"id": "old", "provider": "openai", "model": "gpt-3.5-turbo"},
            {"id": "mini", "provider": "openai", "model": "gpt-4o-mini"},
            {"id": "claude", "provider": "anthropic", "model": "claude-sonnet-4-5-20250929"},
            {"id": "gemini", "provider": "gemini", "model": "gemini-2.5-flash"},
            {
                "id": "local",
                "provider": "vllm",
                "model": "my-model",
                "capabilities": {"tools": True},
            },
        ]
    },
    source="test.yaml",
)


def test_targets_lacking_a_capability_are_passed_over_with_the_reason():
    needs = request(tools=[TOOL]).needs
    policy = RoutingPolicy(targets=["old", "gemini", "mini", "claude", "local"])
    plan = plan_candidates(policy, CONFIG, needs=needs)
    assert [r.deployment.id for r in plan.routes] == ["mini", "claude", "local"]
    reasons = {s.deployment.id: (s.reason, s.detail) for s in plan.skipped}
    assert reasons["old"] == (
        "lacks_capability",
        "lacks tools: tools not known for gpt-3.5-turbo (set capabilities.tools on the deployment)",
    )
    assert reasons["gemini"][1].startswith("lacks tools: turnout's gemini adapter does not")
    assert lacks(["reasoning"], CONFIG.deployments["mini"]) is not None
    assert lacks(["reasoning"], CONFIG.deployments["claude"]) is None


def test_a_policy_with_no_capable_target_is_refused_naming_what_is_missing():
    with pytest.raises(InvalidRequest) as caught:
        check_capable(
            CONFIG,
            RoutingPolicy(targets=["old", "local"]),
            request(
                tools=[TOOL],
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": SCHEMA},
                },
            ),
        )
    assert "needs tools, json_schema" in str(caught.value)
    assert "local lacks json_schema" in str(caught.value)
    assert caught.value.param == "tools"
    check_capable(CONFIG, RoutingPolicy(targets=["old"]), request())  # plain text: any target


def reply(text: str) -> ProviderCompletion:
    return ProviderCompletion(
        text=text, finish_reason="stop", provider_finish_reason="stop", usage=None
    )


def test_a_reply_is_checked_against_the_schema_asked_for():
    asked = request(
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA}}
    )
    assert checked_output(asked, reply('{"n": 3}')).parsed == {"n": 3}
    with pytest.raises(InvalidOutput, match="not JSON"):
        checked_output(asked, reply("Sure! {n: 3}"))
    with pytest.raises(InvalidOutput, match="does not match the schema at n"):
        checked_output(asked, reply('{"n": "three"}'))
    assert checked_output(request(), reply("plain")).parsed is None


def test_reasoning_effort_none_needs_nothing_of_the_model():
    assert request(reasoning_effort="none").needs == []
    assert request(reasoning_effort="xhigh").needs == ["reasoning"]
