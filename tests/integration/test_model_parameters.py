"""Models that refuse parameters, through a real worker and the simulators that refuse what the
services refuse (ops.simulator.model_refusals): the job succeeds with what it went without in
its attempt log, or fails over; the route's breaker stays closed; the next job to the same model
sends nothing it refuses (the simulators record every request).

Cases (issue 11, "What goes wrong today", 1-4): OpenAI and Azure reasoning models and
temperature/top_p/stop; Claude 4.7+ sampling parameters and 4.6+ prefill, on Anthropic and on
Bedrock (Converse); Grok reasoning models and stop; Azure's api-version (v1 by default, and a
dated version too old for a reasoning model fails the credential check as calls would).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from ops.redis_namespace import delete_namespace
from ops.simulator.anthropic_sim import AnthropicSimulator
from ops.simulator.azure_sim import AzureSimulator
from ops.simulator.base import ProviderSimulator
from ops.simulator.bedrock_sim import BedrockSimulator
from ops.simulator.openai_sim import OpenAISimulator
from ops.simulator.server import ServerThread
from producers.client import Client
from routing.keys import Keys
from routing.models import CompletionResult, JobState
from tests.integration.conftest import run_cli
from tests.integration.harness import FAST_DELIVERY_ENV, Worker, settings_for

KEY = f"sim-params-{uuid.uuid4().hex}"
AWS_KEY_ID = "AKIDPARAMSTEST01"
AWS_SECRET = "params/secret+key/0123456789"

#: deployment id -> (simulator, provider, model, extra config lines)
DEPLOYMENTS: dict[str, tuple[str, str, str, dict[str, Any]]] = {
    "openai-o3": ("openai", "openai", "o3", {}),
    # A model the table gets wrong (it says gpt-4.1 takes stop; this one does not): the refusal
    # teaches the fleet. Stands for every model newer than the table.
    "openai-stale": (
        "openai",
        "openai",
        "gpt-5-mini",
        {"capabilities": {"parameters": ["temperature", "top_p", "stop"]}},
    ),
    "openai-4o": ("openai", "openai", "gpt-4o-mini", {}),
    "azure-o3": ("azure", "azure", "o3", {}),
    "xai-grok4": ("xai", "xai", "grok-4", {}),
    "xai-stale": (
        "xai",
        "xai",
        "grok-3-mini",
        {"capabilities": {"parameters": ["temperature", "top_p", "stop"]}},
    ),
    "claude-opus-47": ("anthropic", "anthropic", "claude-opus-4-7", {}),
    "claude-sonnet-46": ("anthropic", "anthropic", "claude-sonnet-4-6", {}),
    "claude-sonnet-45": ("anthropic", "anthropic", "claude-sonnet-4-5", {}),
    "bedrock-opus-47": ("bedrock", "bedrock", "us.anthropic.claude-opus-4-7-v1:0", {}),
    "bedrock-sonnet-46": ("bedrock", "bedrock", "anthropic.claude-sonnet-4-6", {}),
    "bedrock-stale": (
        "bedrock",
        "bedrock",
        "anthropic.claude-opus-4-8-v1:0",
        {"capabilities": {"parameters": ["temperature", "top_p", "stop"]}},
    ),
}
PATHS = {"openai": "/v1", "xai": "/v1", "azure": "", "anthropic": "", "bedrock": ""}


@dataclass
class ParamsStack:
    env: dict[str, str]
    sims: dict[str, ProviderSimulator]
    urls: dict[str, str]
    namespace: str
    redis_url: str
    worker: Worker

    def client(self) -> Client:
        return Client(settings=settings_for(self.env))

    def run(self, target: str | list[str], **request: Any) -> CompletionResult:
        targets = [target] if isinstance(target, str) else target
        body = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 256, **request}
        with self.client() as client:
            return client.submit(body, targets=targets).wait(60)

    def breaker(self, route: str) -> dict[str, str]:
        key = Keys(self.namespace).route(route).breaker
        with redis.Redis.from_url(self.redis_url, decode_responses=True) as client:
            breaker: dict[str, str] = client.hgetall(key)
            return breaker

    def sent(self, sim: str, model: str) -> list[dict[str, Any]]:
        """The bodies of the chat requests ``sim`` received for ``model``."""
        bodies = []
        for record in self.sims[sim].state.stats.recent:
            body = record["body"] or {}
            if (
                body.get("model") == model
                or model in record["raw_path"]
                or (model.replace(":", "%3A") in record["raw_path"])
            ):
                bodies.append(body)
        return bodies


def _config(path: Path, urls: dict[str, str]) -> None:
    deployments = [
        {
            "id": deployment,
            "provider": provider,
            "model": model,
            "base_url": f"{urls[sim]}{PATHS[sim]}",
            **extra,
        }
        for deployment, (sim, provider, model, extra) in DEPLOYMENTS.items()
    ]
    # One failure would open a breaker: a refusal that counted would show at once.
    breaker = {"consecutive_failures": 1, "cooldown_s": 300}
    path.write_text(yaml.safe_dump({"deployments": deployments, "breaker": breaker}))


@pytest.fixture(scope="module")
def stack(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParamsStack]:
    directory = tmp_path_factory.mktemp("params")
    sims: dict[str, ProviderSimulator] = {
        "openai": OpenAISimulator(name="openai", api_key=KEY),
        "xai": OpenAISimulator(name="xai", api_key=KEY),
        "azure": AzureSimulator(name="azure", api_key=KEY),
        "anthropic": AnthropicSimulator(name="anthropic", api_key=KEY),
        "bedrock": BedrockSimulator(name="bedrock", api_key=f"{AWS_KEY_ID}:{AWS_SECRET}"),
    }
    servers = {name: ServerThread(sim).start() for name, sim in sims.items()}
    urls = {name: server.url for name, server in servers.items()}
    config = directory / "turnout.yaml"
    _config(config, urls)
    namespace = f"t-{uuid.uuid4().hex[:10]}"
    env = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH")},
        **FAST_DELIVERY_ENV,
        "REDIS_URL": redis_url,
        "TURNOUT_NAMESPACE": namespace,
        "TURNOUT_CONFIG": str(config),
        "OPENAI_API_KEY": KEY,
        "XAI_API_KEY": KEY,
        "AZURE_API_KEY": KEY,
        "ANTHROPIC_API_KEY": KEY,
        "AWS_ACCESS_KEY_ID": AWS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    worker = Worker(env, directory / "worker.log").start()
    try:
        yield ParamsStack(env, sims, urls, namespace, redis_url, worker)
    finally:
        worker.stop()
        for server in servers.values():
            server.stop()
        with redis.Redis.from_url(redis_url) as client:
            delete_namespace(client, namespace)


def assert_closed(stack: ParamsStack, route: str) -> None:
    breaker = stack.breaker(route)
    assert breaker.get("state", "closed") == "closed", breaker
    assert breaker.get("consecutive", "0") == "0", breaker


SAMPLING = {"temperature": 0.2, "top_p": 0.9, "stop": ["END"]}


@pytest.mark.parametrize(
    ("deployment", "sim", "model", "dropped"),
    [
        ("openai-o3", "openai", "o3", ["temperature", "top_p", "stop"]),  # case 1
        ("azure-o3", "azure", "o3", ["temperature", "top_p", "stop"]),  # cases 1 and 4 (v1)
        ("claude-opus-47", "anthropic", "claude-opus-4-7", ["temperature", "top_p"]),  # case 2
        ("xai-grok4", "xai", "grok-4", ["stop"]),  # case 3
    ],
)
def test_what_the_table_knows_is_refused_is_never_sent(stack, deployment, sim, model, dropped):
    result = stack.run(deployment, **SAMPLING)
    assert result.state is JobState.SUCCEEDED, result.error
    (call,) = result.provider_calls
    assert call.outcome == "ok"
    for parameter in dropped:
        assert f"dropped {parameter}: not accepted by {model}" in (call.message or "")
    assert_closed(stack, deployment)
    sent = stack.sent(sim, model)
    assert sent, "the simulator saw the call"
    wire = {
        "stop": ("stop", "stop_sequences"),
        "top_p": ("top_p",),
        "temperature": ("temperature",),
    }
    for body in sent:
        for parameter in dropped:
            assert not any(name in body for name in wire[parameter]), body


def test_bedrock_converse_claude_47_gets_no_inference_sampling(stack):  # case 2, Bedrock
    result = stack.run("bedrock-opus-47", **SAMPLING)
    assert result.state is JobState.SUCCEEDED, result.error
    assert "dropped temperature: not accepted by" in (result.provider_calls[0].message or "")
    assert_closed(stack, "bedrock-opus-47")
    for body in stack.sent("bedrock", "claude-opus-4-7"):
        config = body.get("inferenceConfig") or {}
        assert "temperature" not in config
        assert "topP" not in config
        assert config.get("stopSequences") == ["END"], "stop is still accepted"


@pytest.mark.parametrize(
    ("deployment", "sim", "model", "refused"),
    [
        ("openai-stale", "openai", "gpt-5-mini", ["temperature", "top_p", "stop"]),
        ("xai-stale", "xai", "grok-3-mini", ["stop"]),
        ("bedrock-stale", "bedrock", "claude-opus-4-8", ["temperature", "top_p"]),
    ],
)
def test_a_refusal_the_table_missed_is_retried_without_it_and_learnt_fleet_wide(
    stack, deployment, sim, model, refused
):
    first = stack.run(deployment, **SAMPLING)
    assert first.state is JobState.SUCCEEDED, first.error
    outcomes = [a.outcome for a in first.provider_calls]
    assert outcomes == ["unsupported_parameter"] * len(refused) + ["ok"], outcomes
    assert {a.deployment for a in first.provider_calls} == {deployment}, "the same route"
    assert_closed(stack, deployment)
    lessons_key = Keys(stack.namespace).refused_parameters(
        DEPLOYMENTS[deployment][1], DEPLOYMENTS[deployment][2].lower()
    )
    with redis.Redis.from_url(stack.redis_url, decode_responses=True) as client:
        assert set(client.hkeys(lessons_key)) == set(refused)
        assert 0 < client.ttl(lessons_key) <= 86_400

    before = len(stack.sent(sim, model))
    second = stack.run(deployment, **SAMPLING)
    assert second.state is JobState.SUCCEEDED, second.error
    (call,) = second.provider_calls
    assert call.outcome == "ok"
    assert f"dropped {refused[0]}: refused by" in (call.message or "")
    (body,) = stack.sent(sim, model)[before:]
    flat = {**body, **(body.get("inferenceConfig") or {})}
    wire = {
        "stop": "stop",
        "temperature": "temperature",
        "top_p": "topP" if sim == "bedrock" else "top_p",
    }
    for parameter in refused:
        assert wire[parameter] not in flat, f"the second job sent {parameter}: {body}"


@pytest.mark.parametrize(
    ("refusing", "accepting"),
    [("claude-sonnet-46", "claude-sonnet-45"), ("bedrock-sonnet-46", "claude-sonnet-45")],
)
def test_prefill_passes_a_claude_46_over_to_one_that_continues_it(stack, refusing, accepting):
    result = stack.run(
        [refusing, accepting],
        messages=[
            {"role": "user", "content": "Answer in JSON"},
            {"role": "assistant", "content": "{"},
        ],
    )
    assert result.state is JobState.SUCCEEDED, result.error
    assert result.deployment == accepting
    skipped = [a for a in result.attempts if a.outcome == "skipped"]
    assert [(a.deployment, a.reason) for a in skipped] == [(refusing, "unsupported_parameter")]
    assert [a.deployment for a in result.provider_calls] == [accepting]
    assert_closed(stack, refusing)


def azure_check(stack: ParamsStack, **env: str) -> dict[str, Any]:
    """``turnout providers check --json``'s verdict on Azure (its probe: the first Azure
    deployment of the config, ``azure-o3``)."""
    checked = run_cli(
        ["providers", "check", "--json", "--timeout", "5"],
        {**stack.env, "AZURE_BASE_URL": stack.urls["azure"], **env},
    )
    results = json.loads(checked.stdout)["results"]
    verdict: dict[str, Any] = next(r for r in results if r["provider"] == "azure")
    return verdict


def test_an_old_api_version_fails_the_credential_check_as_the_calls_would(stack):  # case 4
    old = azure_check(stack, AZURE_API_VERSION="2024-10-21")
    assert old["status"] == "wrong_region_or_version", old
    assert "2024-12-01-preview" in old["detail"], old
    chat_requests = stack.sims["azure"].state.stats.chat_requests
    assert azure_check(stack)["status"] == "ok", "the v1 API, the default, serves o3"
    assert stack.sims["azure"].state.stats.chat_requests == chat_requests, "no billed call"
