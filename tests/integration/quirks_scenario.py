"""Issue 11's cases 5-10 through one real worker and the simulators of models named like the real
ones: each case a policy of the quirky deployment first and a healthy fallback second, one job
each, and what the job and the quirky route's breaker did.

``test_provider_quirks`` asserts on it; ``python -m tests.integration.quirks_scenario`` prints
the same observations as a table, which is how the before/after figures of the note were taken
(the same module and simulators, run once against the old workers and once against these).
It uses nothing of turnout's but the producer's client, the key names and the simulators, so
it runs against either.
"""

from __future__ import annotations

import json
import secrets
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import redis
import yaml

from ops.redis_namespace import delete_namespace
from ops.simulator.bedrock_sim import BedrockSimulator
from ops.simulator.gemini_sim import GeminiSimulator
from ops.simulator.ollama_sim import OllamaSimulator
from ops.simulator.openai_sim import OpenAISimulator
from ops.simulator.server import ServerThread, free_port
from producers.client import Client
from routing.keys import Keys
from tests.integration.harness import Worker, settings_for, stack_env

#: A prompt of about 5000 tokens (the simulators count four characters a token): over Ollama's
#: default num_ctx of 4096 and over Groq's on_demand 6000 TPM with max_tokens 1024.
LONG_PROMPT = "Summarise the following notes. " + " ".join(
    f"note {i}: the quick brown fox jumps over the lazy dog." for i in range(400)
)
#: The window the Bedrock simulator gives its models (the table's 200k and 300k stand in the
#: config, so the plan sends the prompt and Bedrock refuses it, as a real overflow goes).
BEDROCK_WINDOW = 1000

#: case -> (policy's first target, the request's fields); the second target is ``fallback``
#: (a 1M-token window), or ``fallback-128k`` where it says so
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "5 groq 413 TPM": ("groq", {"prompt": LONG_PROMPT, "max_tokens": 1024}),
    "5b groq 413 TPM, smaller fallback": ("groq-b", {"prompt": LONG_PROMPT, "max_tokens": 1024}),
    "6a bedrock claude overflow": ("bedrock-claude", {"prompt": LONG_PROMPT, "max_tokens": 256}),
    "6b bedrock text bytes": ("bedrock-nova", {"prompt": LONG_PROMPT, "max_tokens": 256}),
    "7 magistral chunks": ("mistral", {"prompt": "why is the sky blue?"}),
    "8a ollama over num_ctx": ("ollama-small", {"prompt": LONG_PROMPT}),
    "8b ollama num_ctx from window": ("ollama-large", {"prompt": LONG_PROMPT}),
    "9a o3 spends the budget": ("openai-o3", {"prompt": "think hard", "max_tokens": 32}),
    "9b gemini thoughts only": ("gemini-pro", {"prompt": "think hard", "max_tokens": 32}),
    "10a wrong base path": ("wrong-path", {"prompt": "hello"}),
    "10b refused connection": ("refused", {"prompt": "hello"}),
    "10c gemini behind a wrong prefix": ("gemini-wrong", {"prompt": "hello"}),
}


@dataclass(frozen=True)
class Observation:
    """One case's job and its first target's breaker, read right after the job finished."""

    state: str
    deployment: str | None
    error_class: str | None
    #: what each provider call of the job did: "<deployment>:<outcome>"
    calls: list[str]
    #: the first attempt's message (the quirky route's), if it failed
    message: str | None
    text: str | None
    prompt_tokens: int | None
    breaker: str
    breaker_reason: str
    #: failures in a row the breaker has counted against the route (5 open it)
    breaker_failures: int
    #: the route is cooling (a Retry-After or reset header), seconds left
    cooling_s: float


@contextmanager
def quirks_stack(redis_url: str, directory: Path) -> Iterator[tuple[Client, Worker, str]]:
    """Simulators, a config of every case's deployments, and a worker; yields a client, the
    worker and the namespace, and removes them all after."""
    namespace = f"t-{uuid.uuid4().hex[:10]}"
    key = f"sim-{secrets.token_hex(8)}"
    aws = ("AKIDQUIRKS", f"secret-{secrets.token_hex(8)}")
    sims = {
        "groq": OpenAISimulator(name="groq", api_key=key, models=["llama-3.1-8b-instant"]),
        "bedrock": BedrockSimulator(
            name="bedrock",
            api_key=f"{aws[0]}:{aws[1]}",
            models=["anthropic.claude-3-haiku-20240307-v1:0", "amazon.nova-lite-v1:0"],
        ),
        "mistral": OpenAISimulator(name="mistral", api_key=key, models=["magistral-medium-2509"]),
        "ollama": OllamaSimulator(name="ollama", models=["llama3.2"]),
        "openai": OpenAISimulator(name="openai", api_key=key, models=["o3", "gpt-4o-mini"]),
        "gemini": GeminiSimulator(name="gemini", api_key=key, models=["gemini-2.5-pro"]),
    }
    with ExitStack() as stack:
        urls = {}
        for name, sim in sims.items():
            server = ServerThread(sim).start()
            stack.callback(server.stop)
            urls[name] = server.url
        groq_faults = json.dumps({"retry_after_s": 7.66}).encode()
        _control(urls["groq"], "faults", groq_faults)
        _control(urls["bedrock"], "faults", json.dumps({"context_window": BEDROCK_WINDOW}).encode())
        config = directory / "turnout.yaml"
        config.write_text(yaml.safe_dump(_config(urls)))
        env = stack_env(
            redis_url,
            namespace,
            config,
            [],
            SIM_KEY=key,
            AWS_ACCESS_KEY_ID=aws[0],
            AWS_SECRET_ACCESS_KEY=aws[1],
            AWS_DEFAULT_REGION="us-east-1",
            GEMINI_FORCE_MINIMUM_THINKING_BUDGET="true",
        )
        for name in list(env):
            if name.startswith(("AWS_SESSION", "AWS_PROFILE", "GOOGLE_", "GEMINI_API")):
                env.pop(name)
        worker = Worker(env, directory / "worker.log").start()
        stack.callback(worker.stop)
        stack.callback(_forget, redis_url, namespace)
        with Client(settings=settings_for(env)) as client:
            yield client, worker, namespace


def _control(url: str, path: str, body: bytes) -> None:
    import urllib.request

    request = urllib.request.Request(f"{url}/_sim/{path}", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=5):
        pass


def _forget(redis_url: str, namespace: str) -> None:
    with redis.Redis.from_url(redis_url) as client:
        delete_namespace(client, namespace)


def _config(urls: dict[str, str]) -> dict[str, Any]:
    key = {"api_key_env": "SIM_KEY"}
    deployments: list[dict[str, Any]] = [
        {"id": "groq", "provider": "groq", "model": "llama-3.1-8b-instant", **key},
        {"id": "groq-b", "provider": "groq", "model": "llama-3.1-8b-instant", **key},
        {
            "id": "bedrock-claude",
            "provider": "bedrock",
            "model": "anthropic.claude-3-haiku-20240307-v1:0",
        },
        {
            "id": "bedrock-nova",
            "provider": "bedrock",
            "model": "amazon.nova-lite-v1:0",
        },
        {"id": "mistral", "provider": "mistral", "model": "magistral-medium-2509", **key},
        {"id": "ollama-small", "provider": "ollama", "model": "llama3.2"},
        {"id": "ollama-large", "provider": "ollama", "model": "llama3.2", "context_window": 32768},
        {"id": "openai-o3", "provider": "openai", "model": "o3", **key},
        {"id": "gemini-pro", "provider": "gemini", "model": "gemini-2.5-pro", **key},
        {"id": "wrong-path", "provider": "openai", "model": "gpt-4o-mini", **key},
        {"id": "refused", "provider": "openai", "model": "gpt-4o-mini", **key},
        {"id": "gemini-wrong", "provider": "gemini", "model": "gemini-2.5-flash", **key},
        {
            "id": "fallback",
            "provider": "openai",
            "model": "gpt-4o-mini",
            "context_window": 1_000_000,
            **key,
        },
        {"id": "fallback-128k", "provider": "openai", "model": "gpt-4o-mini", **key},
    ]
    bases = {
        "groq": f"{urls['groq']}/v1",
        "groq-b": f"{urls['groq']}/v1",
        "bedrock-claude": urls["bedrock"],
        "bedrock-nova": urls["bedrock"],
        "mistral": f"{urls['mistral']}/v1",
        "ollama-small": urls["ollama"],
        "ollama-large": urls["ollama"],
        "openai-o3": f"{urls['openai']}/v1",
        "gemini-pro": f"{urls['gemini']}/v1beta",
        "wrong-path": f"{urls['openai']}/openai/deployments/v1",
        "refused": f"http://127.0.0.1:{free_port()}/v1",
        "gemini-wrong": f"{urls['gemini']}/google/v1beta",
        "fallback": f"{urls['openai']}/v1",
        "fallback-128k": f"{urls['openai']}/v1",
    }
    for deployment in deployments:
        deployment["base_url"] = bases[str(deployment["id"])]
    policies = {
        name.split(" ", 1)[0]: {
            "targets": [first, "fallback-128k" if "smaller fallback" in name else "fallback"],
            "attempt_timeout_s": 6,
            "deadline_s": 8,
            "retries_per_target": 1,
            "backoff_base_s": 0.05,
        }
        for name, (first, _) in CASES.items()
    }
    return {"deployments": deployments, "policies": policies}


def run_case(client: Client, namespace: str, case: str) -> Observation:
    first, fields = CASES[case]
    request = {
        "messages": [{"role": "user", "content": fields["prompt"]}],
        **{k: v for k, v in fields.items() if k != "prompt"},
    }
    result = client.submit(request, policy=case.split(" ", 1)[0]).wait(60)
    calls = [a for a in result.attempts if a.outcome != "skipped"]
    breaker = _breaker(client, namespace, first)
    return Observation(
        state=str(result.state.value),
        deployment=result.deployment,
        error_class=(str(result.error.error_class.value) if result.error else None),
        calls=[f"{a.deployment}:{a.outcome}" for a in calls],
        message=calls[0].message if calls and calls[0].outcome != "ok" else None,
        text=result.text,
        prompt_tokens=result.usage.prompt_tokens if result.usage else None,
        breaker=breaker["state"],
        breaker_reason=breaker["reason"],
        breaker_failures=breaker["consecutive"],
        cooling_s=breaker["cooling_s"],
    )


def _breaker(client: Client, namespace: str, route_id: str) -> dict[str, Any]:
    keys = Keys(namespace).route(route_id)
    with redis.Redis.from_url(client.settings.redis_url, decode_responses=True) as r:
        fields = r.hgetall(keys.breaker)
        seconds, micros = r.time()
    now_ms = seconds * 1000 + micros / 1000
    cool_until = float(fields.get("cool_until") or 0)
    return {
        "state": fields.get("state", "closed"),
        "reason": fields.get("reason", ""),
        "consecutive": int(fields.get("consecutive") or 0),
        "cooling_s": round(max(0.0, (cool_until - now_ms) / 1000), 1),
    }


def main() -> None:
    redis_url = sys.argv[1] if len(sys.argv) > 1 else "redis://127.0.0.1:6379/0"
    with (
        tempfile.TemporaryDirectory() as directory,
        quirks_stack(redis_url, Path(directory)) as (client, _, namespace),
    ):
        rows = {case: asdict(run_case(client, namespace, case)) for case in CASES}
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
