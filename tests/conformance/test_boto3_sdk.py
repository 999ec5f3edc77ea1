"""Conformance with boto3: for the same prompt our adapter sends what boto3's bedrock-runtime
client sends (and the simulator, which verifies SigV4 with botocore, accepts both), both read its
replies the same way, and boto3's ClientError codes match our error classes."""

from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from ops.simulator.bedrock_sim import BedrockSimulator
from routing.errors import ErrorClass, ProviderError
from routing.models import CompletionRequest
from tests.providers.harness import (
    adapter_for,
    complete,
    probe,
    recent,
    serving,
    set_faults,
    settings,
)

KEY_ID = "AKIDCONFORMANCE01"
SECRET = "conformance/secret+key/0123456789abcdefgh"
REGION = "us-west-2"
MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
MESSAGES: Any = [{"role": "user", "content": [{"text": "Hi there"}]}]
REQUEST = CompletionRequest.model_validate(
    {
        "messages": [
            {"role": "system", "content": "be terse"},
            {"role": "user", "content": "Hi there"},
        ],
        "max_tokens": 64,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": ["END"],
    }
)


@pytest.fixture
def simulator():
    return BedrockSimulator(name="bdr", api_key=f"{KEY_ID}:{SECRET}", region=REGION)


@pytest.fixture
def server(simulator):
    with serving(simulator) as running:
        yield running


def sdk(server, service="bedrock-runtime", secret=SECRET):
    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=server.url,
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}),
    )


def sdk_converse(server, secret=SECRET):
    return sdk(server, secret=secret).converse(
        modelId=MODEL,
        messages=MESSAGES,
        system=[{"text": "be terse"}],
        inferenceConfig={
            "maxTokens": 64,
            "temperature": 0.2,
            "topP": 0.9,
            "stopSequences": ["END"],
        },
    )


def ours(server, secret=SECRET):
    env = settings(
        AWS_ACCESS_KEY_ID=KEY_ID, AWS_SECRET_ACCESS_KEY=secret, AWS_DEFAULT_REGION=REGION
    )
    return adapter_for("bedrock", MODEL, env, base_url=server.url)


def test_the_adapter_sends_what_boto3_sends(server, simulator):
    sdk_converse(server)
    complete(ours(server), REQUEST)
    theirs, mine = recent(server)
    assert (mine["method"], mine["raw_path"], mine["query"]) == (
        theirs["method"],
        theirs["raw_path"],
        theirs["query"],
    )
    assert mine["raw_path"] == "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
    assert (
        mine["headers"]["authorization"]
        == theirs["headers"]["authorization"]
        == "AWS4-HMAC-SHA256 [hidden]"
    )
    assert mine["headers"]["content-type"] == theirs["headers"]["content-type"]
    assert mine["body"] == theirs["body"]
    assert (theirs["auth_ok"], mine["auth_ok"]) == (True, True)
    their_signature, my_signature = simulator.signatures
    assert my_signature["signed_headers"] == their_signature["signed_headers"]
    assert (
        my_signature["scope"][8:]
        == their_signature["scope"][8:]
        == (f"/{REGION}/bedrock/aws4_request")
    )


def test_the_probe_is_the_request_boto3_makes_for_list_foundation_models(server, simulator):
    listed = sdk(server, "bedrock").list_foundation_models(byOutputModality="TEXT")
    assert listed["modelSummaries"][0]["modelId"] == "sim-model"
    probe(ours(server))
    theirs, mine = simulator.signatures
    assert (mine["method"], mine["raw_path"]) == (theirs["method"], theirs["raw_path"])
    assert mine["signed_headers"] == theirs["signed_headers"]
    assert (theirs["verdict"], mine["verdict"]) == ("ok", "ok")


def test_both_read_a_completion_the_same_way(server):
    theirs = sdk_converse(server)
    mine = complete(ours(server), REQUEST)
    assert mine.text == "".join(block["text"] for block in theirs["output"]["message"]["content"])
    assert mine.provider_finish_reason == theirs["stopReason"]
    assert mine.usage is not None
    assert (mine.usage.prompt_tokens, mine.usage.completion_tokens, mine.usage.total_tokens) == (
        theirs["usage"]["inputTokens"],
        theirs["usage"]["outputTokens"],
        theirs["usage"]["totalTokens"],
    )
    assert mine.response_id is not None


@pytest.mark.parametrize(
    ("status", "code", "error_class"),
    [
        (400, "ValidationException", ErrorClass.BAD_REQUEST),
        (403, "AccessDeniedException", ErrorClass.PERMISSION),
        (404, "ResourceNotFoundException", ErrorClass.MODEL_NOT_FOUND),
        (408, "ModelTimeoutException", ErrorClass.TIMEOUT),
        (424, "ModelErrorException", ErrorClass.SERVER_ERROR),
        (429, "ThrottlingException", ErrorClass.RATE_LIMITED),
        (500, "InternalServerException", ErrorClass.SERVER_ERROR),
        (503, "ServiceUnavailableException", ErrorClass.OVERLOADED),
    ],
)
def test_both_read_an_error_the_same_way(server, status, code, error_class):
    set_faults(server, fail_rate=1.0, fail_status=status)
    with pytest.raises(ClientError) as theirs:
        sdk_converse(server)
    assert theirs.value.response["Error"]["Code"] == code
    assert theirs.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    with pytest.raises(ProviderError) as mine:
        complete(ours(server), REQUEST)
    assert mine.value.provider_code == code
    assert mine.value.error_class is error_class


def test_a_wrong_secret_is_an_invalid_signature_to_both(server):
    wrong = "wrong/secret+key/0123456789abcdefghijklmn"
    with pytest.raises(ClientError) as theirs:
        sdk_converse(server, secret=wrong)
    assert theirs.value.response["Error"]["Code"] == "InvalidSignatureException"
    with pytest.raises(ProviderError) as mine:
        complete(ours(server, secret=wrong), REQUEST)
    assert mine.value.provider_code == "InvalidSignatureException"
    assert mine.value.error_class is ErrorClass.AUTH
