"""The pure parts of workers.providers.aws_credentials: which region, which key pair, what
`turnout providers` calls missing, where a bearer token may go, and how botocore's failures
are classed (with botocore's own exception types, raised by nothing but the test)."""

import pytest
from botocore import exceptions as aws
from pydantic import SecretStr

from routing.errors import ConfigError, ErrorClass, ProviderError
from workers.providers.aws_credentials import (
    AwsCredentialChain,
    RegionChoice,
    bearer_allowed,
    choose_region,
    credential_failure,
    missing_for_inventory,
    static_keys,
)


def never():
    raise AssertionError("the profile's region was read although a variable named one")


def test_the_region_comes_from_the_deployment_then_the_variables_then_the_profile():
    variables = {"AWS_REGION": None, "AWS_DEFAULT_REGION": "eu-west-1"}
    pick = choose_region
    assert pick("ap-south-1", variables, never) == RegionChoice(
        "ap-south-1", "the deployment's region"
    )
    assert pick(None, variables, never) == RegionChoice("eu-west-1", "AWS_DEFAULT_REGION")
    assert pick(None, {"AWS_REGION": None}, lambda: "us-east-2") == RegionChoice(
        "us-east-2", "the profile's region"
    )
    assert pick(None, {}, lambda: None) is None


def test_half_a_key_pair_is_refused_naming_the_missing_half():
    assert static_keys(None, None, None) is None
    with pytest.raises(ConfigError, match="AWS_ACCESS_KEY_ID is set without AWS_SECRET"):
        static_keys(SecretStr("AKIDHALF0000000001"), None, None)
    refused = AwsCredentialChain(refusal="AWS_ACCESS_KEY_ID is set without ...")
    with pytest.raises(ProviderError) as caught:
        refused.frozen()
    assert caught.value.error_class is ErrorClass.AUTH


def test_static_keys_are_frozen_as_given_and_say_their_source():
    keys = static_keys(SecretStr("AKIDSTATIC00000001"), SecretStr("s" * 40), SecretStr("tok"))
    chain = AwsCredentialChain(static=keys, session_factory=lambda _: pytest.fail("no chain"))
    frozen = chain.frozen()
    assert (frozen.access_key, frozen.secret_key, frozen.token) == (
        "AKIDSTATIC00000001",
        "s" * 40,
        "tok",
    )
    assert chain.source == "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"


def test_nothing_found_is_remembered_for_the_cooldown():
    walks = []

    class Session:
        def get_credentials(self):
            walks.append(1)

    chain = AwsCredentialChain(session_factory=lambda _: Session(), cooldown_s=60)
    for _ in range(3):
        with pytest.raises(ProviderError, match="no AWS credentials found"):
            chain.frozen()
    assert len(walks) == 1


def test_what_turnout_providers_calls_missing():
    def is_set(*names):
        return lambda env: env in names

    assert missing_for_inventory(is_set("AWS_PROFILE")) == []
    assert missing_for_inventory(is_set("AWS_BEARER_TOKEN_BEDROCK")) == []
    assert missing_for_inventory(is_set("AWS_ACCESS_KEY_ID")) == ["AWS_SECRET_ACCESS_KEY"]
    assert missing_for_inventory(is_set("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")) == []
    assert "AWS_PROFILE" in missing_for_inventory(is_set())[0]


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://bedrock-runtime.us-east-1.amazonaws.com", True),
        ("http://127.0.0.1:8080", True),
        ("http://localhost:8080", True),
        ("http://bedrock-proxy.internal", False),
        ("http://10.0.0.5:443", False),
    ],
)
def test_a_bearer_token_goes_over_https_or_to_this_machine(url, allowed):
    assert bearer_allowed(url) is allowed


def client_error(code, status):
    response = {
        "Error": {"Code": code, "Message": "m"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return aws.ClientError(response, "AssumeRole")


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (aws.EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), ErrorClass.CONNECTION),
        (aws.ConnectTimeoutError(endpoint_url="https://sts.amazonaws.com"), ErrorClass.CONNECTION),
        (client_error("AccessDenied", 403), ErrorClass.AUTH),
        (client_error("ExpiredToken", 400), ErrorClass.AUTH),
        (client_error("Throttling", 400), ErrorClass.SERVER_ERROR),
        (client_error("InternalFailure", 500), ErrorClass.SERVER_ERROR),
        (aws.ProfileNotFound(profile="nope"), ErrorClass.AUTH),
        (aws.NoCredentialsError(), ErrorClass.AUTH),
        (
            RuntimeError(
                "Credentials were refreshed, but the refreshed credentials are still expired."
            ),
            ErrorClass.AUTH,
        ),
    ],
)
def test_botocore_failures_are_classed(exc, expected):
    assert credential_failure(exc, "profile 'p'").error_class is expected


def test_a_credential_process_failure_does_not_repeat_its_output():
    exc = aws.CredentialRetrievalError(provider="custom-process", error_msg="SECRET=hunter2-xyz")
    error = credential_failure(exc, "profile 'p'")
    assert error.error_class is ErrorClass.AUTH
    assert "hunter2" not in error.message
    assert "custom-process" in error.message
