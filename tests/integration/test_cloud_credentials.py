"""Azure with Entra ID and Vertex at the global location, through a real worker process.

The worker's DefaultAzureCredential gets its token from the Azure simulator's App Service
managed-identity endpoint (IDENTITY_ENDPOINT, IDENTITY_HEADER), and the simulator accepts only
the bearer tokens it issued; no AZURE_API_KEY is set. The Vertex deployment names
``location: global`` for a model the simulator serves from global only, while
GOOGLE_CLOUD_LOCATION says us-central1 for the rest. Both jobs succeed at their first call and
no token reaches the log or Redis."""

from __future__ import annotations

import json
import os

import redis

from ops.simulator.azure_sim import AzureSimulator
from ops.simulator.server import ServerThread
from ops.simulator.vertex_sim import VertexSimulator
from producers.client import Client
from routing.models import JobState
from tests.integration.conftest import run_cli
from tests.integration.harness import FAST_DELIVERY_ENV, Worker, settings_for
from tests.integration.test_secrets import dump_namespace
from tests.providers.harness import ServiceAccountKey

IDENTITY_SECRET = "worker-identity-header-secret-0123"
GLOBAL_MODEL = "gemini-3-pro-preview"


def test_entra_id_and_a_global_vertex_location_through_a_worker(redis_url, namespace, tmp_path):
    sa_key = ServiceAccountKey.generate()
    azure = AzureSimulator(
        name="azure", api_key="never-sent-key-0123456789", identity_header=IDENTITY_SECRET
    )
    vertex = VertexSimulator(
        name="vertex",
        models=[GLOBAL_MODEL],
        trusted_keys={sa_key.key_id: sa_key.public_pem},
        global_only=frozenset({GLOBAL_MODEL}),
    )
    servers = {"azure": ServerThread(azure).start(), "vertex": ServerThread(vertex).start()}
    sa_file = sa_key.write(tmp_path / "sa.json", f"{servers['vertex'].url}/token", project="p1")
    config = tmp_path / "turnout.yaml"
    config.write_text(
        "deployments:\n"
        f"  - {{id: azure-entra, provider: azure, model: my-deployment, auth: entra_id,\n"
        f"      base_url: '{servers['azure'].url}'}}\n"
        f"  - {{id: vertex-global, model: 'vertex_ai/{GLOBAL_MODEL}', location: global,\n"
        f"      base_url: '{servers['vertex'].url}'}}\n"
        "policies:\n"
        "  azure: {targets: [azure-entra], retries_per_target: 0, deadline_s: 8}\n"
        "  vertex: {targets: [vertex-global], retries_per_target: 0, deadline_s: 8}\n"
    )
    env = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH")},
        **FAST_DELIVERY_ENV,
        "REDIS_URL": redis_url,
        "TURNOUT_NAMESPACE": namespace,
        "TURNOUT_CONFIG": str(config),
        "IDENTITY_ENDPOINT": f"{servers['azure'].url}/msi/token",
        "IDENTITY_HEADER": IDENTITY_SECRET,
        "GOOGLE_CLOUD_PROJECT": "p1",
        "GOOGLE_CLOUD_LOCATION": "us-central1",
        "GOOGLE_APPLICATION_CREDENTIALS": str(sa_file),
    }
    worker = Worker(env, tmp_path / "worker.log", concurrency=2, loglevel="debug")
    client = Client(settings=settings_for(env))
    try:
        worker.start()
        results = [
            client.submit("hello", policy=policy).wait(timeout=60)
            for policy in ("azure", "azure", "vertex")
        ]
        for result in results:
            assert result.state is JobState.SUCCEEDED, result
            assert [a.outcome for a in result.attempts] == ["ok"], result.attempts
        assert len(azure.entra_tokens) == 1, "one Entra ID token for both calls"
        assert all(r["auth_ok"] for r in azure.state.stats.recent)
        assert all("api-key" not in r["headers"] for r in azure.state.stats.recent)
        assert vertex.locations == ["global"]
        worker.stop()
        log = worker.log()
        dumped = repr(dump_namespace(redis.Redis.from_url(redis_url), namespace))
        for token in [*azure.entra_tokens, *vertex.issued, IDENTITY_SECRET]:
            assert token not in log
            assert token not in dumped
    finally:
        client.close()
        worker.stop()
        for server in servers.values():
            server.stop()


def test_providers_check_names_the_alias_a_value_came_from(tmp_path):
    """LiteLLM's AZURE_API_BASE and an Entra ID deployment: the check probes Azure with a
    managed-identity token (no AZURE_API_KEY anywhere) and says where the endpoint came from."""
    azure = AzureSimulator(name="azure", identity_header=IDENTITY_SECRET, api_key="k" * 24)
    with ServerThread(azure) as server:
        config = tmp_path / "turnout.yaml"
        config.write_text(
            "deployments:\n  - {id: az, provider: azure, model: my-deployment, auth: entra_id}\n"
        )
        env = {
            **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH")},
            "TURNOUT_CONFIG": str(config),
            "AZURE_API_BASE": server.url,
            "IDENTITY_ENDPOINT": f"{server.url}/msi/token",
            "IDENTITY_HEADER": IDENTITY_SECRET,
        }
        done = run_cli(["providers", "check", "--json", "--timeout", "5"], env)
        assert done.returncode == 0, done.stdout + done.stderr
        (result,) = json.loads(done.stdout)["results"]
        assert (result["provider"], result["status"]) == ("azure", "ok")
        assert result["notes"] == ["AZURE_BASE_URL read from AZURE_API_BASE (LiteLLM's name)"]
        shown = run_cli(["providers", "check", "--timeout", "5"], env)
        assert "azure: AZURE_BASE_URL read from AZURE_API_BASE (LiteLLM's name)" in shown.stderr
        for token in azure.entra_tokens:
            assert token not in done.stdout + shown.stdout + shown.stderr
