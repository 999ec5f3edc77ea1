"""The Bedrock adapter against the Bedrock simulator over HTTP. The simulator recomputes every
SigV4 signature with botocore from the bytes it received, so a request it accepts is one AWS would
accept (the double encoding of ``%3A`` included), and one it refuses gets AWS's 403."""

import dataclasses
import json

import pytest

from ops.simulator.bedrock_sim import BedrockSimulator
from routing.errors import ErrorClass, ProviderError
from routing.models import CompletionRequest
from tests.providers.harness import (
    TRANSPORT,
    adapter_for,
    complete,
    probe,
    recent,
    serving,
    settings,
)

KEY_ID = "AKIDWIRETEST0001"
SECRET = "wire/secret+key/0123456789abcdefghijklm"
TOKEN = "FwoGZXIvYXdzEXAMPLE/session+token=="
MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
ENCODED = "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
REQUEST = CompletionRequest.model_validate(
    {
        "messages": [{"role": "system", "content": "be terse"}, {"role": "user", "content": "hi"}],
        "max_tokens": 50,
        "temperature": 0.5,
        "stop": ["END"],
    }
)


@pytest.fixture
def simulator():
    return BedrockSimulator(name="bdr", api_key=f"{KEY_ID}:{SECRET}", region="us-east-1")


@pytest.fixture
def server(simulator):
    with serving(simulator) as running:
        yield running


def adapter(server, model=MODEL, *, secret=SECRET, via_env=False, **env):
    credentials = {
        "AWS_ACCESS_KEY_ID": KEY_ID,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    if via_env:
        env = {
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": server.url,
            "AWS_ENDPOINT_URL_BEDROCK": server.url,
            **env,
        }
    base_url = None if via_env else server.url
    return adapter_for("bedrock", model, settings(**credentials, **env), base_url=base_url)


def test_the_request_on_the_wire_and_the_parsed_result(server, simulator):
    result = complete(adapter(server), REQUEST)
    (sent,) = recent(server)
    assert (sent["method"], sent["raw_path"], sent["query"]) == ("POST", ENCODED, {})
    assert sent["path"] == f"/model/{MODEL}/converse"
    assert sent["headers"]["authorization"] == "AWS4-HMAC-SHA256 [hidden]"
    assert sent["headers"]["content-type"] == "application/json"
    assert "x-amz-security-token" not in sent["headers"]
    assert sent["headers"]["x-amz-date"][:8] == simulator.signatures[0]["scope"][:8]
    assert sent["body"] == {
        "messages": [{"role": "user", "content": [{"text": "hi"}]}],
        "system": [{"text": "be terse"}],
        "inferenceConfig": {"maxTokens": 50, "temperature": 0.5, "stopSequences": ["END"]},
    }
    assert sent["auth_ok"] is True
    (signature,) = simulator.signatures
    assert signature["signed_headers"] == ["content-type", "host", "x-amz-date"]
    assert signature["scope"].endswith("/us-east-1/bedrock/aws4_request")
    assert signature["verdict"] == "ok"
    assert result.text.startswith(f"bdr ({MODEL}) answers")
    assert (result.finish_reason, result.provider_finish_reason) == ("stop", "end_turn")
    assert result.usage is not None
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens
    assert result.response_id


def test_an_arn_travels_as_one_label_and_the_endpoint_variables_are_followed(server):
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-lite-v1:0"
    result = complete(adapter(server, arn, via_env=True), REQUEST)
    (sent,) = recent(server)
    assert sent["raw_path"] == (
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile"
        "%2Fus.amazon.nova-lite-v1%3A0/converse"
    )
    assert f"({arn})" in result.text
    probe(adapter(server, via_env=True))


def test_the_simulator_refuses_a_path_signed_with_single_encoding(server, simulator):
    """Sign ``...v1:0`` but send ``...v1%3A0``: the canonical paths differ (%3A vs %253A), which
    is exactly the hand-rolled signers' bug. Sending what was signed is accepted."""
    ours = adapter(server)
    body = json.dumps({"messages": [{"role": "user", "content": [{"text": "hi"}]}]}).encode()
    raw_colon = f"{server.url}/model/{MODEL}/converse"
    signed_raw = ours.signed("POST", raw_colon, body)
    sent_encoded = dataclasses.replace(signed_raw, url=f"{server.url}{ENCODED}")
    with pytest.raises(ProviderError) as caught:
        ours.parse_reply(TRANSPORT.send(sent_encoded, timeout_s=5))
    assert caught.value.error_class is ErrorClass.AUTH
    assert caught.value.provider_code == "InvalidSignatureException"
    assert ours.parse_reply(TRANSPORT.send(signed_raw, timeout_s=5)).text
    assert [s["verdict"] for s in simulator.signatures] == ["InvalidSignatureException", "ok"]


def test_an_unknown_access_key_is_an_unrecognized_client(server):
    stranger = adapter_for(
        "bedrock",
        MODEL,
        settings(
            AWS_ACCESS_KEY_ID="AKIDSOMEONEELSE",
            AWS_SECRET_ACCESS_KEY=SECRET,
            AWS_DEFAULT_REGION="us-east-1",
        ),
        base_url=server.url,
    )
    with pytest.raises(ProviderError) as caught:
        complete(stranger, REQUEST)
    assert caught.value.error_class is ErrorClass.AUTH
    assert caught.value.provider_code == "UnrecognizedClientException"


def test_a_session_token_is_sent_and_signed():
    simulator = BedrockSimulator(name="sts", api_key=f"{KEY_ID}:{SECRET}:{TOKEN}")
    with serving(simulator) as server:
        complete(adapter(server, AWS_SESSION_TOKEN=TOKEN), REQUEST)
        assert recent(server)[0]["headers"]["x-amz-security-token"] == "(value) [hidden]"
        assert simulator.signatures[0]["signed_headers"] == [
            "content-type",
            "host",
            "x-amz-date",
            "x-amz-security-token",
        ]
        for token in ("FwoGZXIvYXdzOTHER", None):
            env = {"AWS_SESSION_TOKEN": token} if token else {}
            with pytest.raises(ProviderError) as caught:
                complete(adapter(server, **env), REQUEST)
            assert caught.value.provider_code == "UnrecognizedClientException"


def fragments(secret, length=8):
    return {secret[start : start + length] for start in range(len(secret) - length + 1)}


def test_a_bad_signature_with_a_session_token_keeps_no_fragment_of_the_token():
    """AWS's InvalidSignatureException spells out the canonical request, token line included; a
    real STS token is hundreds of characters, so clipping alone would keep part of it."""
    token = "IQoJb3JpZ2luX2VjEXAMPLE/" + "Zm9vYmFyYmF6cXV4" * 30 + "+end=="
    simulator = BedrockSimulator(name="sts", api_key=f"{KEY_ID}:{SECRET}:{token}")
    with serving(simulator) as server:
        wrong = adapter(
            server, secret="not/the+secret/0123456789abcdefghijklmn", AWS_SESSION_TOKEN=token
        )
        raw = TRANSPORT.send(wrong.build_call(REQUEST), timeout_s=5)
        assert f"x-amz-security-token:{token}" in json.loads(raw.body)["message"]
        with pytest.raises(ProviderError) as caught:
            wrong.parse_reply(raw)
        with pytest.raises(ProviderError) as probed:
            probe(wrong)
    for error in (caught.value, probed.value):
        assert (error.error_class, error.provider_code) == (
            ErrorClass.AUTH,
            "InvalidSignatureException",
        )
        assert "does not match the signature you provided" in error.message
        assert "Canonical String" not in error.message
        for kept in (error.message, str(error), repr(error)):
            assert not [piece for piece in fragments(token) if piece in kept]


def test_a_signature_for_another_region_is_refused(server):
    elsewhere = adapter_for(
        "bedrock",
        MODEL,
        settings(
            AWS_ACCESS_KEY_ID=KEY_ID, AWS_SECRET_ACCESS_KEY=SECRET, AWS_DEFAULT_REGION="eu-west-1"
        ),
        base_url=server.url,
    )
    with pytest.raises(ProviderError) as caught:
        complete(elsewhere, REQUEST)
    assert caught.value.error_class is ErrorClass.AUTH


def test_an_unknown_model_is_model_not_found():
    simulator = BedrockSimulator(name="m", api_key=f"{KEY_ID}:{SECRET}", models=[MODEL])
    with serving(simulator) as server:
        complete(adapter(server), REQUEST)
        with pytest.raises(ProviderError) as caught:
            complete(adapter(server, "anthropic.claude-9-v1:0"), REQUEST)
    assert caught.value.error_class is ErrorClass.MODEL_NOT_FOUND
    assert caught.value.status_code == 400


def test_invoke_model_for_anthropic_models(server):
    invoking = adapter(server, BEDROCK_ANTHROPIC_VERSION="bedrock-2023-05-31")
    result = complete(invoking, REQUEST)
    (sent,) = recent(server)
    assert sent["raw_path"] == "/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke"
    assert sent["body"]["anthropic_version"] == "bedrock-2023-05-31"
    assert "model" not in sent["body"]
    assert result.text.startswith(f"bdr ({MODEL}) answers")
    assert (result.model, result.finish_reason) == ("claude-3-haiku-20240307", "stop")


def test_a_wrong_secret_fails_the_signature_check_of_the_call_and_the_probe(server, simulator):
    """(That it is auth, InvalidSignatureException, for both: test_protocol_contract.py.)"""
    wrong = adapter(server, secret="not/the+secret/0123456789abcdefghijklmn")
    with pytest.raises(ProviderError):
        complete(wrong, REQUEST)
    with pytest.raises(ProviderError):
        probe(wrong)
    probe(adapter(server))
    assert [(s["raw_path"], s["verdict"]) for s in simulator.signatures] == [
        (ENCODED, "InvalidSignatureException"),
        ("/foundation-models", "InvalidSignatureException"),
        ("/foundation-models", "ok"),
    ]
