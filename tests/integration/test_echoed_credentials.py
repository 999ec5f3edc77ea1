"""A credential echoed across the 500-character cut of an error body leaves no 12 characters of
itself on any surface: the job record and attempt log, ``turnout show``, the worker's log.

Every protocol whose credential travels as a header value (OpenAI, Azure, Anthropic, Gemini,
Cohere, Ollama, and Vertex's OAuth2 access token) is given a canary key; its simulator answers
401 with a plain-text proxy page that repeats the credential starting 480 characters in, the
case the attack run found (24 to 30 characters of a 40-character canary in the attempt log).
Bedrock is absent on purpose: SigV4 never sends the secret, only the access key id.
"""

import secrets

import redis

from ops.simulator.anthropic_sim import AnthropicSimulator
from ops.simulator.azure_sim import AzureSimulator
from ops.simulator.cohere_sim import CohereSimulator
from ops.simulator.faults import Faults
from ops.simulator.gemini_sim import GeminiSimulator
from ops.simulator.ollama_sim import OllamaSimulator
from ops.simulator.openai_sim import OpenAISimulator
from ops.simulator.server import ServerThread
from ops.simulator.vertex_sim import VertexSimulator
from tests.integration.conftest import run_cli
from tests.integration.harness import Worker
from tests.integration.protocol_stack import protocol_env, write_protocol_config
from tests.integration.test_secrets import dump_namespace
from tests.providers.harness import ServiceAccountKey

RUN = 12  # what may survive of a key: fewer than this many characters in a row


def runs_of(secret: str) -> set[str]:
    return {secret[i : i + RUN] for i in range(len(secret) - RUN + 1)}


def test_a_key_echoed_across_the_cut_leaves_no_run_of_itself_anywhere(
    redis_url, namespace, tmp_path
):
    canaries = {
        name: f"canary-{name.split('_')[0].lower()}-{secrets.token_hex(16)}"
        for name in (
            "OPENAI_API_KEY",
            "AZURE_API_KEY",
            "ANTHROPIC_API_KEY",
            "GEMINI_API_KEY",
            "COHERE_API_KEY",
            "OLLAMA_API_KEY",
        )
    }
    echo = Faults(echo_credential_at=480)
    sa_key = ServiceAccountKey.generate()
    vertex = VertexSimulator(
        name="vertex",
        models=["gemini-2.5-flash"],
        trusted_keys={sa_key.key_id: sa_key.public_pem},
        faults=echo,
    )
    sims = {
        "openai": OpenAISimulator(name="openai", api_key=canaries["OPENAI_API_KEY"], faults=echo),
        "azure": AzureSimulator(name="azure", api_key=canaries["AZURE_API_KEY"], faults=echo),
        "anthropic": AnthropicSimulator(
            name="anthropic", api_key=canaries["ANTHROPIC_API_KEY"], faults=echo
        ),
        "gemini": GeminiSimulator(name="gemini", api_key=canaries["GEMINI_API_KEY"], faults=echo),
        "cohere": CohereSimulator(name="cohere", api_key=canaries["COHERE_API_KEY"], faults=echo),
        "ollama": OllamaSimulator(
            name="ollama", api_key=canaries["OLLAMA_API_KEY"], models=["llama3.2"], faults=echo
        ),
        "vertex": vertex,
    }
    servers = {name: ServerThread(sim).start() for name, sim in sims.items()}
    try:
        url = {name: server.url for name, server in servers.items()}
        sa_file = sa_key.write(tmp_path / "sa.json", f"{url['vertex']}/token")
        config = tmp_path / "turnout.yaml"
        deployments = write_protocol_config(config, url, suffix="echo")
        env = protocol_env(redis_url, namespace, config, url, sa_file, canaries)
        worker = Worker(env, tmp_path / "worker.log", loglevel="debug")
        try:
            worker.start()
            submitted = run_cli(["submit", "--prompt", "hello", "--wait", "--json"], env)
            job_id = submitted.stdout.split('"job_id": "')[1].split('"')[0]
            shown = run_cli(["show", job_id], env)
        finally:
            worker.stop()
    finally:
        for server in servers.values():
            server.stop()

    assert submitted.returncode == 1, submitted.stdout + submitted.stderr  # every route refused
    assert submitted.stdout.count('"outcome": "auth"') == len(deployments), submitted.stdout
    assert vertex.issued, "the Vertex deployment really went through the token flow"
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        stored = dump_namespace(client, namespace)
    places = {
        "redis": stored,
        "worker log": worker.log(),
        "submit output": submitted.stdout + submitted.stderr,
        "show output": shown.stdout + shown.stderr,
    }
    for secret in [*canaries.values(), *vertex.issued]:
        for where, text in places.items():
            survivors = [run for run in runs_of(secret) if run in text]
            assert not survivors, f"{survivors[0]!r} of {secret[:10]}... appears in the {where}"
