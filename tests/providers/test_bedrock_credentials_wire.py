"""Bedrock credentials through botocore's own chain, against the simulators over real HTTP:
a profile in a temporary shared credentials file, AssumeRole with ``source_profile`` against a
local STS (``AWS_ENDPOINT_URL_STS``, honoured by botocore), credentials that expire between
calls and are refreshed by botocore, a Bedrock API key sent as a bearer token, and the region
chosen per deployment. Each accepted request had its SigV4 signature (or token) checked by the
simulator."""

from __future__ import annotations

import json
import os
import time

import pytest

from ops.simulator.bedrock_sim import BedrockSimulator
from ops.simulator.sts_sim import StsSimulator
from routing.errors import ErrorClass, ProviderError
from routing.models import CompletionRequest
from tests.providers.harness import TRANSPORT, adapter_for, complete, probe, serving, settings

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
SOURCE = ("AKIDSOURCEPROFILE01", "source/secret+key/0123456789abcdefghij")
PROFILE_KEYS = ("AKIDPROFILEKEYS0001", "profile/secret+key/0123456789abcdefgh")
ROLE = "arn:aws:iam::123456789012:role/bedrock-caller"
API_KEY = "ABSKQmVkcm9ja0FQSUtleS1zaW11bGF0ZWQtMDEyMzQ1Njc4OQ=="
REQUEST = CompletionRequest.model_validate(
    {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 20}
)


@pytest.fixture
def aws_files(tmp_path, monkeypatch):
    """Shared config and credentials files of this test only, and no other AWS source."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    config, credentials = tmp_path / "config", tmp_path / "credentials"
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return config, credentials


def write_profiles(aws_files, config_text: str) -> None:
    config, credentials = aws_files
    credentials.write_text(
        f"[source]\naws_access_key_id = {SOURCE[0]}\naws_secret_access_key = {SOURCE[1]}\n"
        f"[keys]\naws_access_key_id = {PROFILE_KEYS[0]}\n"
        f"aws_secret_access_key = {PROFILE_KEYS[1]}\n"
    )
    config.write_text(config_text)


def bedrock(server, *, region=None, **env):
    fields = {"region": region} if region else {}
    return adapter_for("bedrock", MODEL, settings(**env), base_url=server.url, **fields)


def test_a_profile_of_the_shared_files_signs_and_gives_its_region(aws_files):
    write_profiles(aws_files, "[profile keys]\nregion = eu-central-1\n")
    simulator = BedrockSimulator(api_key=":".join(PROFILE_KEYS), region="eu-central-1")
    with serving(simulator) as server:
        adapter = bedrock(server, AWS_PROFILE="keys")
        assert adapter.region == "eu-central-1"
        assert complete(adapter, REQUEST).text.startswith("sim (")
        probe(adapter)
    assert [s["verdict"] for s in simulator.signatures] == ["ok", "ok"]
    assert {s["key_id"] for s in simulator.signatures} == {PROFILE_KEYS[0]}


def test_the_deployment_region_wins_over_the_variables_and_the_profile(aws_files):
    write_profiles(aws_files, "[profile keys]\nregion = eu-central-1\n")
    simulator = BedrockSimulator(api_key=":".join(PROFILE_KEYS), region="ap-northeast-1")
    with serving(simulator) as server:
        adapter = bedrock(
            server, region="ap-northeast-1", AWS_PROFILE="keys", AWS_DEFAULT_REGION="us-east-1"
        )
        complete(adapter, REQUEST)
        assert simulator.signatures[-1]["scope"].split("/")[1] == "ap-northeast-1"
        from_env = bedrock(server, AWS_PROFILE="keys", AWS_REGION_NAME="us-west-2")
        assert from_env.region == "us-west-2"  # LiteLLM's name, before the profile's


def assume_role_config() -> str:
    return (
        f"[profile caller]\nrole_arn = {ROLE}\nsource_profile = source\nregion = us-east-1\n"
        f"[profile source]\nregion = us-east-1\n"
    )


def test_assume_role_with_a_source_profile_goes_through_sts(aws_files, monkeypatch):
    simulator = BedrockSimulator(region="us-east-1")
    sts = StsSimulator(source=SOURCE, roles=[ROLE], issue_to=simulator)
    with serving(simulator) as server, serving(sts) as sts_server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_STS", sts_server.url)
        write_profiles(aws_files, assume_role_config())
        adapter = bedrock(server, AWS_PROFILE="caller")
        for _ in range(3):
            complete(adapter, REQUEST)
    assert len(sts.issued) == 1  # an hour's credentials: botocore keeps them
    assert {s["key_id"] for s in simulator.signatures} == {sts.issued[0]}
    assert all(s["verdict"] == "ok" for s in simulator.signatures)


def test_a_role_sts_refuses_is_an_auth_failure_naming_the_profile_and_no_secret(
    aws_files, monkeypatch
):
    simulator = BedrockSimulator(region="us-east-1")
    sts = StsSimulator(
        source=SOURCE, roles=["arn:aws:iam::123456789012:role/other"], issue_to=simulator
    )
    with serving(simulator) as server, serving(sts) as sts_server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_STS", sts_server.url)
        write_profiles(aws_files, assume_role_config())
        adapter = bedrock(server, AWS_PROFILE="caller")
        with pytest.raises(ProviderError) as caught:
            adapter.build_call(REQUEST)
    assert caught.value.error_class is ErrorClass.AUTH
    assert "profile 'caller'" in caught.value.message
    assert "AccessDenied" in caught.value.message
    assert SOURCE[1] not in caught.value.message
    assert simulator.signatures == type(simulator.signatures)()  # nothing was sent to Bedrock


def test_short_lived_credentials_are_refreshed_before_a_call_carries_an_expired_token(
    aws_files, monkeypatch
):
    """STS issues credentials for 2 s; the simulator refuses them after that. botocore
    refreshes credentials inside its mandatory window (10 minutes) before handing them out,
    so every call carries live ones and none is refused."""
    simulator = BedrockSimulator(region="us-east-1")
    sts = StsSimulator(source=SOURCE, roles=[ROLE], issue_to=simulator, lifetime_s=2)
    with serving(simulator) as server, serving(sts) as sts_server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_STS", sts_server.url)
        write_profiles(aws_files, assume_role_config())
        adapter = bedrock(server, AWS_PROFILE="caller")
        first = adapter.build_call(REQUEST)  # signed now, sent after its token expired
        time.sleep(2.5)
        stale = TRANSPORT.send(first, timeout_s=5)
        assert stale.status == 403
        assert b"expired" in stale.body
        for _ in range(3):
            complete(adapter, REQUEST)
            time.sleep(1)
    verdicts = [s["verdict"] for s in simulator.signatures]
    assert verdicts == ["ExpiredTokenException", "ok", "ok", "ok"]
    assert len(set(sts.issued)) >= 4


def test_a_bedrock_api_key_is_sent_as_a_bearer_token_and_nothing_is_signed(aws_files):
    simulator = BedrockSimulator(bearer_token=API_KEY, region="us-east-1")
    with serving(simulator) as server:
        adapter = bedrock(server, AWS_BEARER_TOKEN_BEDROCK=API_KEY, AWS_REGION="us-east-1")
        call = adapter.build_call(REQUEST)
        assert call.headers["authorization"] == f"Bearer {API_KEY}"
        assert not any(name.startswith("x-amz-") for name in call.headers)
        complete(adapter, REQUEST)
        probe(adapter)
        wrong = bedrock(server, AWS_BEARER_TOKEN_BEDROCK="ABSK-wrong", AWS_REGION="us-east-1")
        with pytest.raises(ProviderError) as caught:
            complete(wrong, REQUEST)
    assert caught.value.error_class is ErrorClass.AUTH
    assert "API Key is valid" in caught.value.message
    assert [s["verdict"] for s in simulator.signatures] == ["ok", "ok", "AccessDeniedException"]


def test_a_bearer_token_is_never_sent_over_plain_http_to_another_host(aws_files):
    from routing.errors import ConfigError

    with pytest.raises(ConfigError, match="HTTPS"):
        adapter_for(
            "bedrock",
            MODEL,
            settings(AWS_BEARER_TOKEN_BEDROCK=API_KEY, AWS_REGION="us-east-1"),
            base_url="http://bedrock-proxy.internal:8080",
        )


def test_no_credentials_anywhere_is_an_auth_failure_that_names_the_chain(aws_files):
    simulator = BedrockSimulator(api_key=":".join(PROFILE_KEYS), region="us-east-1")
    with serving(simulator) as server:
        adapter = bedrock(server, AWS_REGION="us-east-1")
        with pytest.raises(ProviderError) as caught:
            adapter.build_call(REQUEST)
    assert caught.value.error_class is ErrorClass.AUTH
    assert "no AWS credentials found" in caught.value.message
    assert "AWS_PROFILE" in caught.value.message


def test_container_credentials_are_found_and_refreshed(aws_files, monkeypatch):
    """ECS / EKS Pod Identity: AWS_CONTAINER_CREDENTIALS_FULL_URI (botocore allows loopback
    hosts over HTTP) with its authorization token; 2-second credentials, refreshed by botocore
    before each call carries them."""
    simulator = BedrockSimulator(region="us-east-1")
    sts = StsSimulator(
        source=SOURCE, roles=[ROLE], issue_to=simulator, lifetime_s=2, container_token="ctok"
    )
    with serving(simulator) as server, serving(sts) as sts_server:
        monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", f"{sts_server.url}/v1/credentials")
        monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "ctok")
        adapter = bedrock(server, AWS_REGION="us-east-1")
        for _ in range(2):
            complete(adapter, REQUEST)
            time.sleep(2.2)
    assert [s["verdict"] for s in simulator.signatures] == ["ok", "ok"]
    assert len(set(sts.issued)) >= 2


def test_boto3_with_a_bedrock_api_key_sends_the_same_auth_and_body(aws_files, monkeypatch):
    """boto3 prefers AWS_BEARER_TOKEN_BEDROCK over SigV4 (bedrock-runtime's service model
    lists smithy.api#httpBearerAuth): the request it would send, captured before sending,
    carries the same Authorization, content type and body as ours."""
    import boto3

    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", API_KEY)
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    captured = []

    class Captured(Exception):
        pass

    def capture(request, **_):
        captured.append(request)
        raise Captured

    client.meta.events.register("before-send.bedrock-runtime.Converse", capture)
    with pytest.raises(Captured):
        client.converse(
            modelId=MODEL,
            messages=[{"role": "user", "content": [{"text": "hi"}]}],
            inferenceConfig={"maxTokens": 20},
        )
    (theirs,) = captured
    ours = adapter_for(
        "bedrock", MODEL, settings(AWS_BEARER_TOKEN_BEDROCK=API_KEY, AWS_REGION="us-east-1")
    ).build_call(REQUEST)
    assert ours.url == theirs.url
    assert ours.headers["authorization"].encode() == theirs.headers["Authorization"]
    assert ours.headers["content-type"].encode() == theirs.headers["Content-Type"]
    assert json.loads(ours.body) == json.loads(theirs.body)
    assert not any(name.lower().startswith("x-amz-") for name in theirs.headers)
