"""Our SigV4 signature for a fixed request, time and credentials equals the one the SigV4 spec
gives (computed here with hashlib and hmac alone, from the canonical request of providers.md
§18.1) and the one boto3's own bedrock-runtime client sends for the same call.

Time is pinned the way botocore's own tests pin it: by replacing ``botocore.auth``'s clock.
"""

import datetime
import hashlib
import hmac
import json

import boto3
import botocore.auth
import pytest
from botocore.config import Config

from routing.models import CompletionRequest
from tests.providers.harness import adapter_for, settings

NOW = datetime.datetime(2026, 11, 21, 5, 24, 56)
AMZ_DATE = "20261121T052456Z"
KEY_ID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TOKEN = "IQoJb3JpZ2luX2VjEXAMPLETOKEN//////////wEaCXVzLWVhc3QtMSJHMEUCIQ=="
REGION = "us-east-1"
HOST = "bedrock-runtime.us-east-1.amazonaws.com"
MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
REQUEST = CompletionRequest.model_validate(
    {
        "messages": [{"role": "system", "content": "be terse"}, {"role": "user", "content": "Hi"}],
        "max_tokens": 64,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": ["END"],
    }
)
#: What Converse gets for REQUEST, as boto3 serialises the same arguments.
BODY = (
    b'{"messages": [{"role": "user", "content": [{"text": "Hi"}]}], "system": [{"text": '
    b'"be terse"}], "inferenceConfig": {"maxTokens": 64, "temperature": 0.2, "topP": 0.9, '
    b'"stopSequences": ["END"]}}'
)


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch):
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *_, **__: NOW)


def reference_authorization(
    method: str, canonical_uri: str, body: bytes, *, token: str | None = None
) -> str:
    """SigV4 by the spec, nothing from botocore: canonical request, string to sign, key chain."""
    headers = {"content-type": "application/json", "host": HOST, "x-amz-date": AMZ_DATE}
    if token is not None:
        headers["x-amz-security-token"] = token
    signed = ";".join(sorted(headers))
    canonical = "\n".join(
        [
            method,
            canonical_uri,
            "",  # no query string
            *(f"{name}:{headers[name]}" for name in sorted(headers)),
            "",  # the canonical headers end with a newline
            signed,
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{AMZ_DATE[:8]}/{REGION}/bedrock/aws4_request"
    string_to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", AMZ_DATE, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = f"AWS4{SECRET}".encode()
    for part in (AMZ_DATE[:8], REGION, "bedrock", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    return (
        f"AWS4-HMAC-SHA256 Credential={KEY_ID}/{scope}, "
        f"SignedHeaders={signed}, Signature={signature}"
    )


def our_call(model: str = MODEL, **env: str):
    credentials = {"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET}
    adapter = adapter_for(
        "bedrock", model, settings(**credentials, AWS_DEFAULT_REGION=REGION, **env)
    )
    return adapter.build_call(REQUEST)


class _Captured(Exception):
    """Raised from botocore's before-send hook: the request is captured, nothing is sent."""


def boto3_request(model: str = MODEL, token: str | None = None):
    client = boto3.client(
        "bedrock-runtime",
        region_name=REGION,
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
        aws_session_token=token,
        config=Config(retries={"max_attempts": 1}),
    )
    captured = []

    def capture(request, **_):
        captured.append(request)
        raise _Captured

    client.meta.events.register("before-send.bedrock-runtime.Converse", capture)
    with pytest.raises(_Captured):
        client.converse(
            modelId=model,
            messages=[{"role": "user", "content": [{"text": "Hi"}]}],
            system=[{"text": "be terse"}],
            inferenceConfig={
                "maxTokens": 64,
                "temperature": 0.2,
                "topP": 0.9,
                "stopSequences": ["END"],
            },
        )
    client.close()
    (request,) = captured
    return request


def header(request, name: str) -> str:
    value = request.headers[name]
    return value.decode() if isinstance(value, bytes) else value


def test_the_signature_is_the_one_the_spec_gives_with_the_path_encoded_twice():
    call = our_call()
    assert call.url == f"https://{HOST}/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
    assert call.body == BODY
    assert call.headers["x-amz-date"] == AMZ_DATE
    assert call.headers["authorization"] == reference_authorization(
        "POST", "/model/anthropic.claude-3-haiku-20240307-v1%253A0/converse", BODY
    )


def test_signing_the_path_encoded_once_would_give_another_signature():
    """The trap hand-rolled signers fall into (httpx_auth canonicalises the decoded path)."""
    assert our_call().headers["authorization"] != reference_authorization(
        "POST", "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse", BODY
    )


def test_a_session_token_is_sent_and_signed():
    call = our_call(AWS_SESSION_TOKEN=TOKEN)
    assert call.headers["x-amz-security-token"] == TOKEN
    assert call.headers["authorization"] == reference_authorization(
        "POST", "/model/anthropic.claude-3-haiku-20240307-v1%253A0/converse", BODY, token=TOKEN
    )


@pytest.mark.parametrize(
    "model",
    [
        MODEL,
        "amazon.nova-lite-v1:0",
        "meta.llama3-8b-instruct-v1",
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0",
    ],
)
def test_we_send_and_sign_exactly_what_boto3_does(model):
    ours = our_call(model)
    theirs = boto3_request(model)
    assert (ours.method, ours.url, ours.body) == (theirs.method, theirs.url, theirs.body)
    assert ours.headers["content-type"] == header(theirs, "Content-Type")
    assert ours.headers["x-amz-date"] == header(theirs, "X-Amz-Date")
    assert ours.headers["authorization"] == header(theirs, "Authorization")
    assert json.loads(ours.body)["messages"][0]["content"] == [{"text": "Hi"}]


def test_with_a_session_token_we_sign_exactly_what_boto3_does():
    ours = our_call(AWS_SESSION_TOKEN=TOKEN)
    theirs = boto3_request(token=TOKEN)
    assert ours.headers["x-amz-security-token"] == header(theirs, "X-Amz-Security-Token")
    assert ours.headers["authorization"] == header(theirs, "Authorization")
