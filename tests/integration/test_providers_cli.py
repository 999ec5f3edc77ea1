"""turnout providers / providers check against real simulators over HTTP."""

import json
import os

import pytest

from ops.simulator.openai_sim import OpenAISimulator
from ops.simulator.server import ServerThread, free_port
from tests.integration.conftest import run_cli

KEY = "sk-check-key-0123456789abcdef"
WRONG = "sk-wrong-key-0123456789abcdef"


@pytest.fixture
def openai_sim():
    with ServerThread(OpenAISimulator(name="check", api_key=KEY)) as server:
        yield server


def env(tmp_path, **variables):
    """A clean environment: no provider variable of this process leaks in."""
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH")}
    return {**base, **variables}


def test_providers_lists_enabled_missing_and_masked_keys(tmp_path):
    done = run_cli(
        ["providers", "--json"], env(tmp_path, OPENAI_API_KEY=KEY, AZURE_API_KEY="a" * 20)
    )
    assert done.returncode == 0, done.stderr
    rows = {row["name"]: row for row in json.loads(done.stdout)["providers"]}
    assert rows["openai"]["enabled"] is True
    assert rows["openai"]["key"] == "…cdef"
    assert rows["azure"]["missing"] == ["AZURE_BASE_URL"]
    assert KEY not in done.stdout + done.stderr


def test_check_probes_each_enabled_provider_and_explains_failures(tmp_path, openai_sim):
    closed = free_port()
    variables = {
        "OPENAI_API_KEY": KEY,
        "OPENAI_BASE_URL": f"{openai_sim.url}/v1",
        "GROQ_API_KEY": WRONG,
        "VLLM_API_BASE": f"http://127.0.0.1:{closed}/v1",
    }
    # Groq pointed at the same simulator through a config deployment's base_url.
    config = tmp_path / "turnout.yaml"
    config.write_text(
        f"deployments:\n  - id: groq-sim\n    provider: groq\n    model: m\n"
        f"    base_url: {openai_sim.url}/v1\n"
    )
    done = run_cli(
        ["providers", "check", "--json", "--timeout", "3"],
        env(tmp_path, TURNOUT_CONFIG=str(config), **variables),
    )
    assert done.returncode == 1, "a failing provider makes the check fail"
    results = {r["provider"]: r for r in json.loads(done.stdout)["results"]}
    assert set(results) == {"openai", "groq", "vllm"}, "only enabled providers are probed"
    assert results["openai"]["status"] == "ok"
    assert results["groq"]["status"] == "invalid_key"
    assert "GROQ_API_KEY" in results["groq"]["hint"]
    assert results["vllm"]["status"] == "unreachable"
    assert "VLLM_API_BASE" in results["vllm"]["hint"]
    assert WRONG not in done.stdout + done.stderr
    assert KEY not in done.stdout + done.stderr


def test_check_passes_when_every_enabled_provider_answers(tmp_path, openai_sim):
    done = run_cli(
        ["providers", "check"],
        env(tmp_path, OPENAI_API_KEY=KEY, OPENAI_BASE_URL=f"{openai_sim.url}/v1"),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok" in done.stdout
