"""Conformance for tools, tool results, JSON schema output and images: for the same input, the
official openai and anthropic SDKs send the bodies turnout's adapters send, and the simulators'
answers (a tool call, a schema's JSON) are read the same way by both."""

from __future__ import annotations

import base64
import json
from typing import Any

import anthropic
import openai
import pytest

from ops.simulator.anthropic_sim import AnthropicSimulator
from ops.simulator.openai_sim import OpenAISimulator
from routing.models import CompletionRequest
from tests.providers.harness import adapter_for, complete, recent, serving, settings

OPENAI_KEY = "sk-conformance-0123456789abcdef"
ANTHROPIC_KEY = "fake-anthropic-conformance-key"
CLAUDE = "claude-sonnet-4-5-20250929"
WEATHER: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
    "required": ["city", "unit"],
    "additionalProperties": False,
}
TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather now", "parameters": WEATHER},
}
ANSWER: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "degrees": {"type": "integer"}},
    "required": ["city", "degrees"],
    "additionalProperties": False,
}
PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()
HISTORY: list[dict[str, Any]] = [
    {"role": "user", "content": "Weather in Oslo?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_abc123",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Oslo", "unit": "c"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_abc123", "content": "4 degrees"},
]


@pytest.fixture
def oai():
    with serving(OpenAISimulator(name="oai", api_key=OPENAI_KEY)) as running:
        yield running


@pytest.fixture
def ant():
    with serving(AnthropicSimulator(name="ant", api_key=ANTHROPIC_KEY)) as running:
        yield running


def openai_pair(server, request: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """(the SDK's body, turnout's body, turnout's completion) for one request."""
    client = openai.OpenAI(api_key=OPENAI_KEY, base_url=f"{server.url}/v1", max_retries=0)
    client.chat.completions.create(model="gpt-4o-mini", **request)
    adapter = adapter_for(
        "openai", "gpt-4o-mini", settings(OPENAI_API_KEY=OPENAI_KEY), base_url=f"{server.url}/v1"
    )
    completion = complete(adapter, CompletionRequest.model_validate(request))
    theirs, mine = recent(server)[-2:]
    return theirs["body"], mine["body"], completion


@pytest.mark.parametrize(
    "request_fields",
    [
        {"messages": [HISTORY[0]], "tools": [TOOL], "tool_choice": "required"},
        {
            "messages": [HISTORY[0]],
            "tools": [TOOL],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "parallel_tool_calls": False,
        },
        {"messages": HISTORY, "tools": [TOOL]},
        {
            "messages": [HISTORY[0]],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": ANSWER, "strict": True},
            },
            "seed": 7,
            "presence_penalty": 0.5,
            "frequency_penalty": 0.25,
            "user": "user-42",
        },
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is in these?"},
                        {"type": "image_url", "image_url": {"url": PNG}},
                        {
                            "type": "image_url",
                            "image_url": {"url": "https://example.com/a.jpg", "detail": "low"},
                        },
                    ],
                }
            ]
        },
    ],
    ids=["tool-required", "tool-named", "tool-result", "json-schema", "images"],
)
def test_openai_adapter_sends_what_the_sdk_sends(oai, request_fields):
    theirs, mine, _ = openai_pair(oai, request_fields)
    assert mine == theirs


def test_openai_tool_call_and_schema_replies_are_read_as_the_sdk_reads_them(oai):
    client = openai.OpenAI(api_key=OPENAI_KEY, base_url=f"{oai.url}/v1", max_retries=0)
    request: Any = {"messages": [HISTORY[0]], "tools": [TOOL]}
    sdk_reply = client.chat.completions.create(model="gpt-4o-mini", **request)
    _, _, mine = openai_pair(oai, request)
    sdk_call = sdk_reply.choices[0].message.tool_calls[0]
    assert mine.finish_reason == sdk_reply.choices[0].finish_reason == "tool_calls"
    assert mine.tool_calls is not None
    assert mine.tool_calls[0].function.name == sdk_call.function.name == "get_weather"
    assert json.loads(mine.tool_calls[0].function.arguments) == json.loads(
        sdk_call.function.arguments
    )


def anthropic_pair(server, sdk_fields: dict[str, Any], request: dict[str, Any]):
    client = anthropic.Anthropic(api_key=ANTHROPIC_KEY, base_url=server.url, max_retries=0)
    client.messages.create(model=CLAUDE, max_tokens=64, **sdk_fields)
    adapter = adapter_for(
        "anthropic", CLAUDE, settings(ANTHROPIC_API_KEY=ANTHROPIC_KEY), base_url=server.url
    )
    completion = complete(adapter, CompletionRequest.model_validate({"max_tokens": 64, **request}))
    theirs, mine = recent(server)[-2:]
    return theirs["body"], mine["body"], completion


ANTHROPIC_TOOL = {"name": "get_weather", "description": "Weather now", "input_schema": WEATHER}


def test_anthropic_tools_and_a_forced_tool_as_the_sdk_sends_them(ant):
    theirs, mine, completion = anthropic_pair(
        ant,
        {
            "messages": [{"role": "user", "content": "Weather in Oslo?"}],
            "tools": [ANTHROPIC_TOOL],
            "tool_choice": {
                "type": "tool",
                "name": "get_weather",
                "disable_parallel_tool_use": True,
            },
        },
        {
            "messages": [HISTORY[0]],
            "tools": [TOOL],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "parallel_tool_calls": False,
        },
    )
    assert mine == theirs
    assert completion.finish_reason == "tool_calls"
    assert completion.tool_calls is not None
    assert completion.tool_calls[0].id.startswith("toolu_")
    assert json.loads(completion.tool_calls[0].function.arguments) == {"city": "sim", "unit": "c"}


def test_anthropic_tool_results_as_the_sdk_sends_them(ant):
    theirs, mine, completion = anthropic_pair(
        ant,
        {
            "messages": [
                {"role": "user", "content": "Weather in Oslo?"},
                {
                    "role": "assistant",
                    "content": [
                        {
                            "type": "tool_use",
                            "id": "call_abc123",
                            "name": "get_weather",
                            "input": {"city": "Oslo", "unit": "c"},
                        }
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "call_abc123",
                            "content": "4 degrees",
                        }
                    ],
                },
            ],
            "tools": [ANTHROPIC_TOOL],
        },
        {"messages": HISTORY, "tools": [TOOL]},
    )
    assert mine == theirs
    assert completion.text == "The tool answered: 4 degrees"


def test_anthropic_json_schema_and_images_as_the_sdk_sends_them(ant):
    data = PNG.split(",", 1)[1]
    theirs, mine, completion = anthropic_pair(
        ant,
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Describe"},
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": data},
                        },
                        {
                            "type": "image",
                            "source": {"type": "url", "url": "https://example.com/a.jpg"},
                        },
                    ],
                }
            ],
            "output_config": {"format": {"type": "json_schema", "schema": ANSWER}},
        },
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Describe"},
                        {"type": "image_url", "image_url": {"url": PNG}},
                        {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}},
                    ],
                }
            ],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": ANSWER},
            },
        },
    )
    assert mine == theirs
    assert json.loads(completion.text) == {"city": "sim", "degrees": 1}


def test_a_tool_id_anthropic_refuses_is_mapped_the_same_way_in_call_and_result(ant):
    odd = "call:7/weather.oslo"
    history = json.loads(json.dumps(HISTORY).replace("call_abc123", odd))
    adapter = adapter_for(
        "anthropic", CLAUDE, settings(ANTHROPIC_API_KEY=ANTHROPIC_KEY), base_url=ant.url
    )
    request = CompletionRequest.model_validate({"messages": history, "tools": [TOOL]})
    completion = complete(adapter, request)  # the simulator refuses unpaired or invalid ids
    assert completion.text == "The tool answered: 4 degrees"
    sent = recent(ant)[-1]
    used = sent["body"]["messages"][1]["content"][0]["id"]
    assert used == sent["body"]["messages"][2]["content"][0]["tool_use_id"] != odd


def test_a_tool_id_longer_than_openai_takes_is_shortened_the_same_way_in_call_and_result(oai):
    long_id = "fc_" + "0f0e50a1476a6c35006912c58dc9f8819192c25864eb16f07f"
    history = json.loads(json.dumps(HISTORY).replace("call_abc123", long_id))
    adapter = adapter_for(
        "openai", "gpt-4o-mini", settings(OPENAI_API_KEY=OPENAI_KEY), base_url=f"{oai.url}/v1"
    )
    request = CompletionRequest.model_validate({"messages": history, "tools": [TOOL]})
    completion = complete(adapter, request)  # the simulator refuses ids over 40 characters
    assert completion.text == "The tool answered: 4 degrees"
    sent = recent(oai)[-1]["body"]["messages"]
    shortened = sent[1]["tool_calls"][0]["id"]
    assert len(shortened) == 40
    assert shortened == sent[2]["tool_call_id"]
