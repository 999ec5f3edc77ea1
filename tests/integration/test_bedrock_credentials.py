"""Bedrock credentials through a real worker process: an AssumeRole profile whose session
credentials live 3 seconds (a local STS on 127.0.0.1, reached through AWS_ENDPOINT_URL_STS,
which botocore honours), jobs spread over several lifetimes, and a Bedrock API key deployment
beside it; and an IAM Identity Center (SSO) profile, its role credentials from a local portal.
The simulator refuses expired tokens and checks every signature and key; no job fails, no
call is refused, the breaker stays closed, and no issued secret reaches the log or Redis."""

from __future__ import annotations

import json
import os
import time

import redis

from ops.simulator.bedrock_sim import BedrockSimulator
from ops.simulator.server import ServerThread
from ops.simulator.sts_sim import StsSimulator
from producers.client import Client
from routing.models import CompletionResult, JobState
from tests.integration.conftest import run_cli
from tests.integration.harness import FAST_DELIVERY_ENV, Worker, settings_for
from tests.integration.test_secrets import dump_namespace

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
SOURCE = ("AKIDINTEGRATIONSRC01", "integration/source+secret/0123456789abcdef")
ROLE = "arn:aws:iam::123456789012:role/turnout-bedrock"
API_KEY = "ABSKaW50ZWdyYXRpb24tYmVkcm9jay1hcGkta2V5LTAxMjM0NTY3"
LIFETIME_S = 3


def write_aws_files(directory):
    config, credentials = directory / "aws-config", directory / "aws-credentials"
    config.write_text(
        f"[profile caller]\nrole_arn = {ROLE}\nsource_profile = source\nregion = us-east-1\n"
    )
    credentials.write_text(
        f"[source]\naws_access_key_id = {SOURCE[0]}\naws_secret_access_key = {SOURCE[1]}\n"
    )
    return config, credentials


def write_turnout_config(path, bedrock_url):
    path.write_text(
        "deployments:\n"
        f"  - {{id: bedrock-role, provider: bedrock, model: '{MODEL}',\n"
        f"      base_url: '{bedrock_url}'}}\n"
        f"  - {{id: bedrock-key, model: 'bedrock/{MODEL}', base_url: '{bedrock_url}',\n"
        "      api_key_env: BEDROCK_KEY_PROD, region: us-west-2}\n"
        "policies:\n"
        "  role: {targets: [bedrock-role], retries_per_target: 0, deadline_s: 8}\n"
        "  key: {targets: [bedrock-key], retries_per_target: 0, deadline_s: 8}\n"
    )


def test_expiring_role_credentials_are_refreshed_mid_run_and_api_keys_work(
    redis_url, namespace, tmp_path
):
    bedrock = BedrockSimulator(name="bedrock", bearer_token=API_KEY)
    sts = StsSimulator(source=SOURCE, roles=[ROLE], issue_to=bedrock, lifetime_s=LIFETIME_S)
    servers = [ServerThread(bedrock).start(), ServerThread(sts).start()]
    aws_config, aws_credentials = write_aws_files(tmp_path)
    config = tmp_path / "turnout.yaml"
    write_turnout_config(config, servers[0].url)
    env = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH")},
        **FAST_DELIVERY_ENV,
        "REDIS_URL": redis_url,
        "TURNOUT_NAMESPACE": namespace,
        "TURNOUT_CONFIG": str(config),
        "AWS_CONFIG_FILE": str(aws_config),
        "AWS_SHARED_CREDENTIALS_FILE": str(aws_credentials),
        "AWS_PROFILE": "caller",
        "AWS_ENDPOINT_URL_STS": servers[1].url,
        "AWS_EC2_METADATA_DISABLED": "true",
        "BEDROCK_KEY_PROD": API_KEY,
    }
    worker = Worker(env, tmp_path / "worker.log", concurrency=2, loglevel="debug")
    client = Client(settings=settings_for(env))
    try:
        worker.start()
        results: list[CompletionResult] = []
        started = time.monotonic()
        while len(results) < 6 or time.monotonic() - started < 3 * LIFETIME_S:
            results.append(client.submit("hello", policy="role").wait(timeout=60))
            time.sleep(0.7)
        keyed = [client.submit("hello", policy="key").wait(timeout=60) for _ in range(2)]

        for result in results + keyed:
            assert result.state is JobState.SUCCEEDED, result
            assert [a.outcome for a in result.attempts] == ["ok"], result.attempts
        assert {r.deployment for r in keyed} == {"bedrock-key"}

        signed = [s for s in bedrock.signatures if s.get("scheme") != "bearer"]
        bearer = [s for s in bedrock.signatures if s.get("scheme") == "bearer"]
        assert [s["verdict"] for s in signed] == ["ok"] * len(results)
        assert [s["verdict"] for s in bearer] == ["ok", "ok"]
        used = {s["key_id"] for s in signed}
        assert len(used) >= 3, f"credentials of several lifetimes were used: {used}"
        assert used <= set(sts.issued)

        shown = run_cli(["status", "--json"], env)
        assert shown.returncode == 0, shown.stderr
        states = {row["id"]: row["state"] for row in json.loads(shown.stdout)["deployments"]}
        assert states == {"bedrock-role": "closed", "bedrock-key": "closed"}

        worker.stop()
        log = worker.log()
        dumped = repr(dump_namespace(redis.Redis.from_url(redis_url), namespace))
        for secret in [*sts.secrets, SOURCE[1], API_KEY]:
            assert secret not in log
            assert secret not in dumped
    finally:
        client.close()
        worker.stop()
        for server in servers:
            server.stop()


def test_an_sso_profile_through_a_worker(redis_url, namespace, tmp_path):
    """IAM Identity Center: a profile with sso_start_url/sso_account_id/sso_role_name and the
    access token `aws sso login` caches in ~/.aws/sso/cache (the worker's HOME is the test's
    directory: botocore fixes that path at import). botocore's SSOProvider trades it for role
    credentials at the portal (AWS_ENDPOINT_URL_SSO, here the STS simulator), which live 3 s
    and are refreshed between jobs."""
    import hashlib
    from datetime import UTC, datetime, timedelta

    start_url = "https://turnout-test.awsapps.com/start"
    sso_token = "aoaAAAAAGsimulated-sso-access-token-0123456789"
    bedrock = BedrockSimulator(name="bedrock")
    portal = StsSimulator(
        source=SOURCE, roles=[], issue_to=bedrock, lifetime_s=LIFETIME_S, sso_token=sso_token
    )
    servers = [ServerThread(bedrock).start(), ServerThread(portal).start()]
    home = tmp_path / "home"
    cache = home / ".aws" / "sso" / "cache"
    cache.mkdir(parents=True)
    expires = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    (cache / f"{hashlib.sha1(start_url.encode()).hexdigest()}.json").write_text(  # noqa: S324
        json.dumps(
            {
                "startUrl": start_url,
                "region": "us-east-1",
                "accessToken": sso_token,
                "expiresAt": expires,
            }
        )
    )
    (home / ".aws" / "config").write_text(
        "[profile sso-dev]\n"
        f"sso_start_url = {start_url}\nsso_region = us-east-1\n"
        "sso_account_id = 123456789012\nsso_role_name = BedrockUser\nregion = us-east-1\n"
    )
    config = tmp_path / "turnout.yaml"
    config.write_text(
        "deployments:\n"
        f"  - {{id: bedrock-sso, provider: bedrock, model: '{MODEL}',\n"
        f"      base_url: '{servers[0].url}'}}\n"
        "policies:\n"
        "  default: {targets: [bedrock-sso], retries_per_target: 0, deadline_s: 8}\n"
    )
    env = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "PYTHONPATH")},
        **FAST_DELIVERY_ENV,
        "HOME": str(home),
        "REDIS_URL": redis_url,
        "TURNOUT_NAMESPACE": namespace,
        "TURNOUT_CONFIG": str(config),
        "AWS_PROFILE": "sso-dev",
        "AWS_ENDPOINT_URL_SSO": servers[1].url,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    worker = Worker(env, tmp_path / "worker.log", concurrency=2)
    client = Client(settings=settings_for(env))
    try:
        worker.start()
        results: list[CompletionResult] = []
        for _ in range(3):
            results.append(client.submit("hello").wait(timeout=60))
            time.sleep(LIFETIME_S / 2)
        assert [r.state for r in results] == [JobState.SUCCEEDED] * 3, results
        assert [s["verdict"] for s in bedrock.signatures] == ["ok"] * 3
        assert {s["key_id"] for s in bedrock.signatures} <= set(portal.issued)
        assert len(portal.issued) >= 2, "refreshed from the portal as they expired"
        worker.stop()
        log = worker.log()
        for secret in [*portal.secrets, sso_token]:
            assert secret not in log
    finally:
        client.close()
        worker.stop()
        for server in servers:
            server.stop()
