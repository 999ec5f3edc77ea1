"""Tools, structured output and images for real: an OpenAI-compatible primary and an Anthropic
secondary (simulators over HTTP), a real worker, ``turnout serve`` and ``turnout batch``; the
official openai SDK drives serve."""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import openai
import pytest
import yaml
from openai.types.chat import ChatCompletionMessageFunctionToolCall
from pydantic import BaseModel

from ops.redis_namespace import delete_namespace
from ops.simulator.anthropic_sim import AnthropicSimulator
from ops.simulator.server import LOOPBACK, ServerThread, free_port
from ops.stack import ChildProcess
from producers.client import Client
from tests.integration.conftest import run_cli
from tests.integration.harness import Sim, Worker, settings_for, stack_env
from tests.integration.test_serve import healthy, start_serve

CLAUDE = "claude-sonnet-4-5-20250929"
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city now",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
PERSON: dict[str, Any] = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


@dataclass
class ToolStack:
    primary: Sim
    secondary: ServerThread
    secondary_app: AnthropicSimulator
    env: dict[str, str]
    namespace: str
    redis_url: str
    serve_url: str
    token: str

    def client(self) -> Client:
        return Client(settings=settings_for(self.env))

    def sdk(self) -> openai.OpenAI:
        return openai.OpenAI(api_key=self.token, base_url=f"{self.serve_url}/v1", max_retries=0)

    def anthropic_calls(self) -> int:
        state = httpx.get(f"{self.secondary.url}/_sim/state", timeout=5).json()
        return int(state["stats"]["chat_requests"])

    def anthropic_recent(self) -> list[dict[str, Any]]:
        state = httpx.get(f"{self.secondary.url}/_sim/state", timeout=5).json()
        recent: list[dict[str, Any]] = state["stats"]["recent"]
        return recent


@pytest.fixture(scope="module")
def tools_stack(redis_url, tmp_path_factory) -> Iterator[ToolStack]:
    directory = tmp_path_factory.mktemp("tools")
    namespace = f"t-{uuid.uuid4().hex[:10]}"
    primary = Sim("primary", key=f"sim-primary-{uuid.uuid4().hex}")
    anthropic_key = f"sim-anthropic-{uuid.uuid4().hex}"
    secondary_app = AnthropicSimulator(name="claude", api_key=anthropic_key)
    secondary = ServerThread(secondary_app).start()
    config = {
        "deployments": [
            {
                "id": "primary",
                "provider": "openai",
                "model": "gpt-4o-mini",
                "base_url": primary.base_url,
                "api_key_env": "SIM_KEY_PRIMARY",
            },
            {
                "id": "claude",
                "provider": "anthropic",
                "model": CLAUDE,
                "base_url": secondary.url,
                "api_key_env": "SIM_KEY_CLAUDE",
            },
        ],
        "policies": {
            "default": {
                "targets": ["primary", "claude"],
                "attempt_timeout_s": 6,
                "deadline_s": 8,
                "retries_per_target": 1,
                "backoff_base_s": 0.05,
            }
        },
    }
    path = directory / "turnout.yaml"
    path.write_text(yaml.safe_dump(config))
    env = stack_env(redis_url, namespace, path, [primary], SIM_KEY_CLAUDE=anthropic_key)
    token = secrets.token_urlsafe(32)
    worker = Worker(env, directory / "worker.log").start()
    port = free_port()
    serve_env = {**env, "TURNOUT_API_TOKENS": token, "TURNOUT_SERVE_TIMEOUT": "60"}
    serve: ChildProcess = start_serve(serve_env, directory, port)
    try:
        with serve as process:
            url = f"http://{LOOPBACK}:{port}"
            process.wait_until(lambda: healthy(url), timeout_s=30, what="200 at /healthz")
            yield ToolStack(
                primary, secondary, secondary_app, env, namespace, redis_url, url, token
            )
    finally:
        worker.stop()
        primary.stop()
        secondary.stop()
        import redis

        with redis.Redis.from_url(redis_url) as client:
            delete_namespace(client, namespace)


@pytest.fixture
def live(tools_stack: ToolStack) -> ToolStack:
    tools_stack.primary.reset()
    httpx.post(f"{tools_stack.secondary.url}/_sim/reset", json={}, timeout=5)
    return tools_stack


def test_a_tool_round_trip_through_serve_with_the_openai_sdk(live: ToolStack):
    sdk = live.sdk()
    messages: list[Any] = [{"role": "user", "content": "What is the weather in Oslo?"}]
    first = sdk.chat.completions.create(model="default", messages=messages, tools=[WEATHER_TOOL])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert isinstance(call, ChatCompletionMessageFunctionToolCall)
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "sim"}
    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "4 degrees and rain"},
    ]
    final = sdk.chat.completions.create(model="default", messages=messages, tools=[WEATHER_TOOL])
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.content == "The tool answered: 4 degrees and rain"


class Person(BaseModel):
    name: str
    age: int


def test_the_sdks_parse_gets_a_parsed_object(live: ToolStack):
    parsed = live.sdk().chat.completions.parse(
        model="default",
        messages=[{"role": "user", "content": "Extract: Ada, 36"}],
        response_format=Person,
    )
    person = parsed.choices[0].message.parsed
    assert isinstance(person, Person)
    assert person == Person(name="sim", age=1)
    sent = live.primary.stats()["recent"][-1]["body"]
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["strict"] is True


def test_an_image_request_through_serve(live: ToolStack):
    png = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\nimage").decode()
    reply = live.sdk().chat.completions.create(
        model="default",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": png}},
                ],
            }
        ],
    )
    assert reply.choices[0].message.content
    sent = live.primary.stats()["recent"][-1]["body"]["messages"][0]["content"]
    assert sent[1] == {"type": "image_url", "image_url": {"url": png}}


def test_bad_input_is_a_400_in_openais_shape_before_anything_is_enqueued(live: ToolStack):
    sdk = live.sdk()
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(
            model="default",
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "http://x/a.png"}}],
                }
            ],
        )
    assert "https:// URL" in str(caught.value)
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(
            model="default",
            messages=[
                {"role": "user", "content": "hi"},
                {"role": "tool", "tool_call_id": "call_nope", "content": "42"},
            ],
        )
    assert "no preceding assistant tool_calls" in str(caught.value)
    bad_tool: Any = {"type": "function", "function": {"name": "f", "parameters": {"type": 7}}}
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(
            model="default", messages=[{"role": "user", "content": "hi"}], tools=[bad_tool]
        )
    assert "not valid JSON Schema" in str(caught.value)
    assert live.primary.chat_requests() == 0


def test_a_tool_conversation_fails_over_to_anthropic_and_back_with_valid_ids(live: ToolStack):
    """OpenAI-style history (call ids ``call_...``) runs on Anthropic while the primary is down;
    Anthropic's ``toolu_...`` call comes back, and the next turn runs on the healed primary."""
    client = live.client()
    live.primary.set_faults(fail_rate=1.0, fail_status=500)
    history: list[dict[str, Any]] = [
        {"role": "user", "content": "Weather in Oslo, then in Bergen?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_Oslo123",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_Oslo123", "content": "4 degrees"},
        {"role": "user", "content": "And Bergen?"},
    ]
    on_claude = client.complete(
        {"messages": history, "tools": [WEATHER_TOOL]}, policy="default", timeout=60
    )
    assert on_claude.deployment == "claude"
    primary_outcomes = [a.outcome for a in on_claude.attempts if a.deployment == "primary"]
    assert primary_outcomes
    assert set(primary_outcomes) == {"server_error"}
    assert on_claude.finish_reason == "tool_calls"
    (call,) = on_claude.tool_calls or []
    assert call.id.startswith("toolu_")
    sent = live.anthropic_recent()[-1]["body"]["messages"]
    assert sent[1]["content"][0]["id"] == sent[2]["content"][0]["tool_use_id"] == "call_Oslo123"
    live.primary.set_faults(fail_rate=0.0)
    live.primary.reset()
    history += [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "9 degrees"},
    ]
    back = client.complete(
        {"messages": history, "tools": [WEATHER_TOOL]}, policy="default", timeout=60
    )
    assert back.deployment == "primary"
    assert back.text == "The tool answered: 9 degrees"
    client.close()


def test_a_json_schema_batch_with_invalid_replies_validates_every_line(
    live: ToolStack, tmp_path: Path
):
    live.primary.set_faults(invalid_json_rate=0.1)
    lines = 300
    source = tmp_path / "in.jsonl"
    with source.open("w") as out:
        for number in range(lines):
            body = {
                "model": "default",
                "messages": [{"role": "user", "content": f"Extract person {number}"}],
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "person", "schema": PERSON, "strict": True},
                },
            }
            out.write(
                json.dumps(
                    {
                        "custom_id": f"line-{number}",
                        "method": "POST",
                        "url": "/v1/chat/completions",
                        "body": body,
                    }
                )
                + "\n"
            )
    output = tmp_path / "out.jsonl"
    done = run_cli(
        ["batch", str(source), "-o", str(output), "--max-in-flight", "32"], live.env, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = [json.loads(line) for line in output.read_text().splitlines()]
    assert sorted(r["custom_id"] for r in results) == sorted(f"line-{n}" for n in range(lines))
    retried = 0
    for result in results:
        body = result["response"]["body"]
        assert result["response"]["status_code"] == 200, body
        content = body["choices"][0]["message"]["content"]
        jsonschema.validate(json.loads(content), PERSON)
        assert body["turnout"]["parsed"] == json.loads(content)
        outcomes = [a["outcome"] for a in body["turnout"]["attempts"]]
        assert outcomes[-1] == "ok"
        if "invalid_output" in outcomes:
            retried += 1
    assert 10 <= retried <= 60, f"{retried} of {lines} lines were retried"
