"""The seeds' other providers through a real worker process: Replicate's predictions (created,
polled, canceled when the attempt's time runs out), AI21, the Hugging Face router, TGI and
Text Generation WebUI, each on its simulator over HTTP; and ``turnout providers check``
probing each with its own free endpoint."""

import json
import os
import secrets

import pytest
import redis
import yaml

from ops.simulator.ai21_sim import AI21Simulator
from ops.simulator.huggingface_sim import HuggingFaceSimulator, TGISimulator
from ops.simulator.oobabooga_sim import OobaboogaSimulator
from ops.simulator.replicate_sim import ReplicateSimulator
from ops.simulator.server import ServerThread
from producers.client import Client
from routing.models import JobState
from tests.integration.conftest import run_cli
from tests.integration.harness import FAST_DELIVERY_ENV, Worker, settings_for
from tests.integration.test_secrets import dump_namespace

KEYS = {
    "REPLICATE_API_TOKEN": "r8_integration0123456789abcdefghij",
    "AI21_API_KEY": "ai21-integration-0123456789abcdef",
    "HF_TOKEN": "hf_integration0123456789abcdefGHIJ",
    "OOBABOOGA_API_KEY": "ooba-integration-0123456789",
}
HF_MODEL = "meta-llama/Llama-3.1-8B-Instruct"


@pytest.fixture
def sims():
    made = {
        # A prediction outlasts Prefer: wait, so the worker polls it.
        "replicate": ReplicateSimulator(
            name="replicate", api_key=KEYS["REPLICATE_API_TOKEN"], run_s=1.0, max_wait_s=0.2
        ),
        "ai21": AI21Simulator(name="ai21", api_key=KEYS["AI21_API_KEY"]),
        "huggingface": HuggingFaceSimulator(name="hf", api_key=KEYS["HF_TOKEN"], models=[HF_MODEL]),
        "tgi": TGISimulator(name="tgi", models=["Qwen/Qwen3-8B"]),
        "oobabooga": OobaboogaSimulator(name="tgw", api_key=KEYS["OOBABOOGA_API_KEY"]),
    }
    servers = {name: ServerThread(sim).start() for name, sim in made.items()}
    yield made, {name: server.url for name, server in servers.items()}
    for server in servers.values():
        server.stop()


def stack(tmp_path, redis_url, namespace, urls, *, attempt_timeout_s=6.0):
    deployments = [
        {
            "id": "rep",
            "provider": "replicate",
            "model": "meta/meta-llama-3-8b-instruct",
            "base_url": urls["replicate"],
        },
        {
            "id": "jamba",
            "provider": "ai21",
            "model": "jamba-mini",
            "base_url": f"{urls['ai21']}/studio/v1",
        },
        {
            "id": "hf",
            "provider": "huggingface",
            "model": f"{HF_MODEL}:novita",
            "base_url": f"{urls['huggingface']}/v1",
        },
        {"id": "tgi", "provider": "tgi", "model": "tgi", "base_url": urls["tgi"]},
        {
            "id": "tgw",
            "provider": "oobabooga",
            "model": "local",
            "base_url": f"{urls['oobabooga']}/v1",
        },
    ]
    policy = {"retries_per_target": 0, "attempt_timeout_s": attempt_timeout_s, "deadline_s": 8}
    config = tmp_path / "turnout.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "deployments": deployments,
                "policies": {
                    "replicate_first": {**policy, "targets": ["rep", "jamba"]},
                    "others": {**policy, "targets": ["hf", "tgi", "tgw"]},
                },
            }
        )
    )
    return {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH")},
        **FAST_DELIVERY_ENV,
        **KEYS,
        "REDIS_URL": redis_url,
        "TURNOUT_NAMESPACE": namespace,
        "TURNOUT_CONFIG": str(config),
        "REPLICATE_POLL_INTERVAL": "0.1",
        "HF_ENDPOINT": urls["huggingface"],
    }


def test_a_replicate_prediction_is_polled_to_its_end_by_the_worker(
    sims, redis_url, namespace, tmp_path
):
    made, urls = sims
    env = stack(tmp_path, redis_url, namespace, urls)
    worker = Worker(env, tmp_path / "worker.log").start()
    try:
        with Client(settings=settings_for(env)) as client:
            result = client.submit("hello replicate", policy="replicate_first").wait(60)
    finally:
        worker.stop()
    assert result.state is JobState.SUCCEEDED, result.error
    assert (result.deployment, result.provider) == ("rep", "replicate")
    assert result.text is not None
    assert result.text.startswith("replicate (meta/meta-llama-3-8b-instruct) answers")
    assert result.usage is not None
    assert result.usage.completion_tokens > 0
    replicate = made["replicate"]
    assert len(replicate.predictions) == 1
    assert replicate.polls >= 1, "the prediction outlasted the wait, so the worker polled"
    assert replicate.canceled == []
    assert made["ai21"].state.stats.chat_requests == 0


def test_a_prediction_past_the_attempt_timeout_is_canceled_and_the_job_fails_over_to_ai21(
    sims, redis_url, namespace, tmp_path
):
    made, urls = sims
    made["replicate"].run_s = 120  # a cold model that will not answer in time
    env = stack(tmp_path, redis_url, namespace, urls, attempt_timeout_s=2.5)
    worker = Worker(env, tmp_path / "worker.log").start()
    try:
        with Client(settings=settings_for(env)) as client:
            result = client.submit("hello again", policy="replicate_first").wait(60)
    finally:
        worker.stop()
    assert result.state is JobState.SUCCEEDED, result.error
    assert (result.deployment, result.provider) == ("jamba", "ai21")
    first, second = result.attempts
    assert (first.deployment, first.outcome) == ("rep", "timeout")
    assert (second.deployment, second.outcome) == ("jamba", "ok")
    replicate = made["replicate"]
    (prediction_id,) = replicate.predictions
    assert replicate.canceled == [prediction_id], "the prediction given up on was canceled"
    sent = made["ai21"].state.stats.recent[0]
    assert sent["path"] == "/studio/v1/chat/completions"
    assert sent["body"]["stream"] is False


def test_the_hugging_face_router_tgi_and_text_generation_webui_serve_jobs(
    sims, redis_url, namespace, tmp_path
):
    made, urls = sims
    env = stack(tmp_path, redis_url, namespace, urls)
    worker = Worker(env, tmp_path / "worker.log").start()
    try:
        with Client(settings=settings_for(env)) as client:
            first = client.submit("hello hub", policy="others").wait(60)
            made["huggingface"].models = ["someone/else"]  # the router no longer serves it
            second = client.submit("hello tgi", policy="others").wait(60)
            made["tgi"].state.faults = made["tgi"].state.faults.updated({"down": True})
            third = client.submit("hello webui", policy="others").wait(60)
    finally:
        worker.stop()
    assert (first.state, first.deployment) == (JobState.SUCCEEDED, "hf")
    assert made["huggingface"].state.stats.recent[0]["body"]["model"] == f"{HF_MODEL}:novita"
    assert (second.state, second.deployment) == (JobState.SUCCEEDED, "tgi")
    assert second.attempts[0].outcome == "model_not_found"
    assert second.model == "Qwen/Qwen3-8B", "TGI names the model it serves"
    assert (third.state, third.deployment) == (JobState.SUCCEEDED, "tgw")
    assert third.text is not None
    assert third.text.startswith("tgw (Qwen3-8B-Q4_K_M.gguf) answers")


def test_providers_check_probes_each_new_provider(sims, tmp_path, redis_url, namespace):
    made, urls = sims
    env = stack(tmp_path, redis_url, namespace, urls)
    env["AI21_API_KEY"] = "ai21-wrong-0123456789abcdef"
    env["TGI_BASE_URL"] = urls["tgi"]
    env["OOBABOOGA_API_BASE"] = urls["oobabooga"]
    made["huggingface"].permissions = ["repo.content.read"]
    done = run_cli(["providers", "check", "--json", "--timeout", "5"], env)
    results = {r["provider"]: r for r in json.loads(done.stdout)["results"]}
    assert done.returncode == 1, "the wrong AI21 key fails the check"
    assert {name: results[name]["status"] for name in made} == {
        "replicate": "ok",
        "ai21": "invalid_key",
        "huggingface": "no_permission",
        "tgi": "ok",
        "oobabooga": "ok",
    }
    assert "Make calls to Inference Providers" in results["huggingface"]["hint"]
    assert "AI21_API_KEY" in results["ai21"]["hint"]
    assert made["replicate"].state.stats.requests["/v1/account"] == 1
    assert made["huggingface"].state.stats.requests["/api/whoami-v2"] == 1
    assert made["ai21"].state.stats.requests["/studio/v1/library/files"] == 1
    for key in KEYS.values():
        assert key not in done.stdout + done.stderr


def test_no_canary_credential_of_the_new_providers_leaks_anywhere(
    sims, redis_url, namespace, tmp_path
):
    """Every new provider refuses its canary through the worker (each its own auth failure);
    the last target, a TGI that checks no token, answers, so the job completes. No canary is
    in Redis, the worker's log, the CLI's output or a URL."""
    made, urls = sims
    canaries = {name: f"canary-{name.lower()}-{secrets.token_hex(12)}" for name in KEYS}
    env = {**stack(tmp_path, redis_url, namespace, urls), **canaries}
    config = yaml.safe_load((tmp_path / "turnout.yaml").read_text())
    config["deployments"].append({"id": "open-tgi", "provider": "tgi", "model": "tgi"})
    made["tgi"].api_key = "the-token-the-endpoint-really-wants"  # the protected one refuses
    open_tgi = ServerThread(TGISimulator(name="open")).start()
    config["deployments"][-1]["base_url"] = open_tgi.url
    config["policies"]["everything"] = {
        "retries_per_target": 0,
        "deadline_s": 8,
        "targets": ["rep", "jamba", "hf", "tgi", "tgw", "open-tgi"],
    }
    (tmp_path / "turnout.yaml").write_text(yaml.safe_dump(config))
    worker = Worker(env, tmp_path / "worker.log", loglevel="debug")
    try:
        worker.start()
        submitted = run_cli(
            ["submit", "--prompt", "hello", "--policy", "everything", "--wait", "--json"], env
        )
    finally:
        worker.stop()
        open_tgi.stop()
    checked = run_cli(["providers", "check", "--json", "--timeout", "5"], env)
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    data = json.loads(submitted.stdout)
    assert data["deployment"] == "open-tgi"
    assert [a["outcome"] for a in data["attempts"]] == ["auth"] * 5 + ["ok"]
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        stored = dump_namespace(client, namespace)
    urls_sent = "\n".join(
        f"{r['raw_path']} {r['query']}" for sim in made.values() for r in sim.state.stats.recent
    )
    places = {
        "redis": stored,
        "worker log": worker.log(),
        "submit output": submitted.stdout + submitted.stderr,
        "providers check output": checked.stdout + checked.stderr,
        "request urls": urls_sent,
    }
    for where, text in places.items():
        for canary in canaries.values():
            assert canary not in text, f"{canary[:16]}... appears in the {where}"
