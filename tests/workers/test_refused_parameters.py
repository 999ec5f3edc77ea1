"""Each provider's refusal of a parameter, as the service answers it today (bodies quoted in
public issue threads), classified unsupported_parameter with the parameter named in
CompletionRequest's words: never model_not_found (a breaker trip) or bad_request (a failed
job)."""

import json

import pytest

from routing.errors import ErrorClass, UnsupportedParameter
from routing.routes import CallOutcome
from workers.providers.anthropic import classify_error as classify_anthropic
from workers.providers.azure import classify_azure_error
from workers.providers.bedrock_errors import classify_error as classify_bedrock
from workers.providers.openai_compat import classify_error as classify_openai
from workers.providers.refused_parameters import refused_in


def openai_body(message, param, code):
    return json.dumps(
        {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": param,
                "code": code,
            }
        }
    ).encode()


O3_TEMPERATURE = openai_body(
    "Unsupported value: 'temperature' does not support 0.2 with this model. Only the default "
    "(1) value is supported.",
    "temperature",
    "unsupported_value",
)
O3_STOP = openai_body(
    "Unsupported parameter: 'stop' is not supported with this model.",
    "stop",
    "unsupported_parameter",
)
XAI_STOP = json.dumps(
    {
        "code": "Client specified an invalid argument",
        "error": "Argument not supported on this model: stop",
    }
).encode()


def anthropic_body(message):
    return json.dumps(
        {
            "type": "error",
            "error": {"type": "invalid_request_error", "message": message},
            "request_id": "req_011CaA8K4i7kBdnE9ZcQcTgn",
        }
    ).encode()


@pytest.mark.parametrize(
    ("provider", "body", "param"),
    [
        ("openai", O3_TEMPERATURE, "temperature"),
        ("openai", O3_STOP, "stop"),
        ("xai", XAI_STOP, "stop"),
    ],
)
def test_openai_family_refusals(provider, body, param):
    error = classify_openai(provider, 400, body, {})
    assert isinstance(error, UnsupportedParameter)
    assert error.param == param
    assert error.status_code == 400


def test_azure_passes_openais_refusal_through():
    error = classify_azure_error(400, O3_STOP, {})
    assert (error.error_class, getattr(error, "param", None)) == (
        ErrorClass.UNSUPPORTED_PARAMETER,
        "stop",
    )


def test_azure_old_api_version_for_a_reasoning_model_keeps_its_meaning():
    body = json.dumps(
        {
            "error": {
                "code": "BadRequest",
                "message": "Model o3 is enabled only for api versions 2024-12-01-preview and later",
            }
        }
    ).encode()
    assert classify_azure_error(400, body, {}).error_class is ErrorClass.MODEL_NOT_FOUND


@pytest.mark.parametrize(
    ("message", "param"),
    [
        ("`temperature` is deprecated for this model.", "temperature"),
        ("`top_p` is deprecated for this model.", "top_p"),
        (
            "This model does not support assistant message prefill. The conversation must end "
            "with a user message.",
            "assistant_prefill",
        ),
    ],
)
def test_anthropic_refusals(message, param):
    error = classify_anthropic(400, anthropic_body(message), {})
    assert isinstance(error, UnsupportedParameter)
    assert error.param == param


@pytest.mark.parametrize(
    ("message", "param"),
    [
        ("`temperature` is deprecated for this model.", "temperature"),  # InvokeModel
        (
            "The model returned the following errors: `temperature` is deprecated for this model.",
            "temperature",
        ),  # Converse
        ("The model returned the following errors: `topP` is deprecated for this model.", "top_p"),
        (
            "This model does not support assistant message prefill. The conversation must end "
            "with a user message.",
            "assistant_prefill",
        ),
    ],
)
def test_bedrock_refusals(message, param):
    error = classify_bedrock(
        400,
        json.dumps({"message": message}).encode(),
        {"x-amzn-errortype": "ValidationException:http://internal.amazon.com/coral/"},
    )
    assert isinstance(error, UnsupportedParameter), error
    assert error.param == param


def test_other_400s_keep_their_classes():
    assert classify_anthropic(400, anthropic_body("messages: Field required"), {}).error_class is (
        ErrorClass.BAD_REQUEST
    )
    assert refused_in("prompt is too long: 210000 tokens > 200000 maximum") is None


def test_a_refusal_never_counts_against_the_routes_breaker():
    outcome = CallOutcome.of(classify_openai("openai", 400, O3_STOP, {}), latency_s=0.1)
    assert outcome.route_at_fault is False
