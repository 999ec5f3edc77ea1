"""Canary credentials for every provider appear in no URL, log line, error message, job record
or CLI output.

One worker, one deployment per wire protocol, each pointed at its simulator and given a canary
credential the simulator rejects, so every provider's own auth failure (including the ones that
echo a key back) goes through the worker; the last deployment (Vertex, through the real
service-account token flow) succeeds, so the job completes.
"""

import secrets

import redis

from ops.simulator.anthropic_sim import AnthropicSimulator
from ops.simulator.azure_sim import AzureSimulator
from ops.simulator.bedrock_sim import BedrockSimulator
from ops.simulator.cohere_sim import CohereSimulator
from ops.simulator.gemini_sim import GeminiSimulator
from ops.simulator.ollama_sim import OllamaSimulator
from ops.simulator.openai_sim import OpenAISimulator, mask_key
from ops.simulator.server import ServerThread, free_port
from ops.simulator.vertex_sim import VertexSimulator
from tests.integration.conftest import run_cli
from tests.integration.harness import Worker, stack_env
from tests.integration.protocol_stack import protocol_env, write_protocol_config
from tests.integration.test_secrets import dump_namespace
from tests.providers.harness import ServiceAccountKey


def canary(name: str) -> str:
    return f"canary-{name}-{secrets.token_hex(12)}"


def test_no_canary_credential_leaks_anywhere(redis_url, namespace, tmp_path):
    canaries = {
        "OPENAI_API_KEY": canary("openai"),
        "AZURE_API_KEY": canary("azure"),
        "ANTHROPIC_API_KEY": canary("anthropic"),
        "GEMINI_API_KEY": canary("gemini"),
        "AWS_SECRET_ACCESS_KEY": canary("aws-secret"),
        "AWS_SESSION_TOKEN": canary("aws-token"),
        "COHERE_API_KEY": canary("cohere"),
        "OLLAMA_API_KEY": canary("ollama"),
    }
    sa_key = ServiceAccountKey.generate()
    rightful = "the-key-the-provider-really-wants-0123"
    vertex = VertexSimulator(
        name="vertex",
        models=["gemini-2.5-flash"],
        trusted_keys={sa_key.key_id: sa_key.public_pem},
    )
    sims = {
        "openai": OpenAISimulator(name="openai", api_key=rightful),
        "azure": AzureSimulator(name="azure", api_key=rightful),
        "anthropic": AnthropicSimulator(name="anthropic", api_key=rightful),
        "gemini": GeminiSimulator(name="gemini", api_key=rightful),
        "bedrock": BedrockSimulator(name="bedrock", api_key=f"AKIDCANARYTEST:{rightful}"),
        "cohere": CohereSimulator(name="cohere", api_key=rightful),
        "ollama": OllamaSimulator(name="ollama", api_key=rightful, models=["llama3.2"]),
        "vertex": vertex,
    }
    servers = {name: ServerThread(sim).start() for name, sim in sims.items()}
    try:
        url = {name: server.url for name, server in servers.items()}
        sa_file = sa_key.write(tmp_path / "sa.json", f"{url['vertex']}/token")
        config = tmp_path / "turnout.yaml"
        deployments = write_protocol_config(config, url, suffix="canary")
        env = protocol_env(
            redis_url,
            namespace,
            config,
            url,
            sa_file,
            {**canaries, "AWS_ACCESS_KEY_ID": "AKIDCANARYTEST"},
        )
        worker = Worker(env, tmp_path / "worker.log", loglevel="debug")
        try:
            worker.start()
            submitted = run_cli(["submit", "--prompt", "hello", "--wait", "--json"], env)
        finally:
            worker.stop()
        listed = run_cli(["providers", "--json"], env)
        checked = run_cli(["providers", "check", "--json", "--timeout", "5"], env)
    finally:
        for server in servers.values():
            server.stop()

    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    assert '"deployment": "vertex-canary"' in submitted.stdout
    for deployment in deployments[:-1]:
        provider = deployment.removesuffix("-canary")
        assert f'"deployment": "{deployment}", "provider": "{provider}"' in submitted.stdout
    assert submitted.stdout.count('"outcome": "auth"') == 7, submitted.stdout

    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        stored = dump_namespace(client, namespace)
    recorded = "\n".join(
        f"{r['method']} {r['raw_path']} {r['query']} key-in-query={r['query_has_key']}"
        for sim in sims.values()
        for r in sim.state.stats.recent
    )
    assert "key-in-query=True" not in recorded, "a key travelled in a URL"
    secret_values = [
        *canaries.values(),
        mask_key(canaries["OPENAI_API_KEY"]),  # how OpenAI echoes a wrong key
        sa_key.private_pem.splitlines()[1],  # a line of the service account's private key
        *vertex.issued,  # the OAuth2 access tokens google-auth obtained
    ]
    places = {
        "redis": stored,
        "worker log": worker.log(),
        "submit output": submitted.stdout + submitted.stderr,
        "providers output": listed.stdout + listed.stderr,
        "providers check output": checked.stdout + checked.stderr,
        "request urls": recorded,
    }
    for where, text in places.items():
        for secret in secret_values:
            assert secret not in text, f"{secret[:16]}... appears in the {where}"
    assert vertex.issued, "the Vertex deployment really went through the token flow"


def test_a_key_pasted_as_api_key_env_is_shown_by_no_process(redis_url, namespace, tmp_path):
    """The CLI, a worker's start and serve's start each refuse the config in plain words,
    and none prints a run of 12 characters of the key."""
    pasted = f"sk-proj-{secrets.token_urlsafe(27)}"
    config = tmp_path / "turnout.yaml"
    config.write_text(
        "deployments:\n"
        f"  - {{id: main, provider: openai, model: gpt-4o-mini, api_key_env: {pasted}}}\n"
        "policies:\n  default: {targets: [main]}\n"
    )
    env = stack_env(redis_url, namespace, config, [], OPENAI_API_KEY="")
    submitted = run_cli(["submit", "--prompt", "hello"], env)
    served = run_cli(["serve", "--no-auth", "--port", str(free_port())], env)
    worker = Worker(env, tmp_path / "worker.log").start(wait=False)
    assert worker.process is not None
    assert worker.process.wait(timeout_s=30) == 78
    outputs = {
        "turnout submit": (submitted.returncode, submitted.stdout + submitted.stderr),
        "turnout serve": (served.returncode, served.stdout + served.stderr),
        "worker": (78, worker.log()),
    }
    runs = {pasted[i : i + 12] for i in range(len(pasted) - 11)}
    for name, (code, text) in outputs.items():
        assert code != 0, name
        assert "must be the NAME of an environment variable" in " ".join(text.split()), name
        assert not [run for run in runs if run in text], f"{name} printed part of the key"
