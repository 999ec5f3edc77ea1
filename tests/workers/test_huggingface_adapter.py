"""The Hugging Face and AI21 adapters' error tables without a server: the router's and TGI's
quirks, AI21's own statuses, and what the whoami probe makes of a token's permissions."""

import json

import pytest

from routing.config import DeploymentConfig
from routing.errors import ErrorClass, ProviderError
from workers.http import HttpReply
from workers.providers.ai21 import classify_ai21_error
from workers.providers.huggingface import HuggingFaceAdapter, classify_hf_error

E = ErrorClass


@pytest.mark.parametrize(
    ("status", "body", "error_class"),
    [
        (
            400,
            {
                "error": {
                    "message": "The requested model 'x/y' is not supported by any provider "
                    "you have enabled.",
                    "code": "model_not_supported",
                }
            },
            E.MODEL_NOT_FOUND,
        ),
        (
            422,
            {
                "error": "Input validation error: `inputs` tokens + `max_new_tokens` must be <= "
                "4096. Given: 4000 `inputs` tokens and 200 `max_new_tokens`",
                "error_type": "validation",
            },
            E.CONTEXT_LENGTH,
        ),
        (
            422,
            {"error": "`temperature` must be strictly positive", "error_type": "validation"},
            E.BAD_REQUEST,
        ),
        (
            424,
            {"error": "Request failed during generation", "error_type": "generation"},
            E.SERVER_ERROR,
        ),
        (429, {"error": "Model is overloaded", "error_type": "overloaded"}, E.OVERLOADED),
        (429, {"error": "rate limit"}, E.RATE_LIMITED),
        (402, {"error": "You have exceeded your monthly included credits"}, E.PERMISSION),
        (503, {"error": "Service Unavailable"}, E.OVERLOADED),
    ],
)
def test_hugging_face_errors_have_their_class(status, body, error_class):
    error = classify_hf_error("huggingface", status, json.dumps(body).encode(), {})
    assert error.error_class is error_class


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (401, E.AUTH),
        (404, E.MODEL_NOT_FOUND),
        (408, E.TIMEOUT),
        (424, E.SERVER_ERROR),
        (429, E.RATE_LIMITED),
        (530, E.SERVER_ERROR),
    ],
)
def test_ai21_statuses_have_their_class(status, error_class):
    body = json.dumps({"detail": "something"}).encode()
    assert classify_ai21_error(status, body, {}).error_class is error_class


def whoami(token):
    return HttpReply(
        200, {}, json.dumps({"name": "me", "auth": {"accessToken": token}}).encode(), 0
    )


def router():
    deployment = DeploymentConfig(id="hf", provider="huggingface", model="m/n")
    return HuggingFaceAdapter(
        deployment, base_url="https://router.example/v1", api_key=None, hub="https://hub.example"
    )


def test_the_probe_accepts_classic_tokens_and_fine_grained_ones_that_may_infer():
    router().read_probe(whoami({"role": "read"}))
    granted = {"global": ["inference.serverless.write"]}
    router().read_probe(whoami({"role": "fineGrained", "fineGrained": granted}))
    with pytest.raises(ProviderError) as caught:
        router().read_probe(whoami({"role": "fineGrained", "fineGrained": {"global": []}}))
    assert caught.value.error_class is E.PERMISSION
    assert router().build_probe().url == "https://hub.example/api/whoami-v2"
