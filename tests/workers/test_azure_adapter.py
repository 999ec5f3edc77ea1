"""The Azure OpenAI adapter without a server: URLs for classic and v1, headers, body, and how
Azure's replies are classified (providers.md §3)."""

import json

import pytest
from pydantic import SecretStr

from routing.config import DeploymentConfig
from routing.errors import ConfigError, ErrorClass, ProviderError
from routing.models import CompletionRequest
from tests.providers.harness import settings
from workers.http import HttpReply
from workers.providers.azure import AzureOpenAIAdapter, azure_endpoint, classify_azure_error
from workers.providers.registry import build_adapter

KEY = "azure-unit-key-0123456789"
ENDPOINT = "https://res.openai.azure.com"
REQUEST = CompletionRequest.model_validate(
    {
        "messages": [{"role": "system", "content": "be terse"}, {"role": "user", "content": "hi"}],
        "max_tokens": 64,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": ["END"],
    }
)


def adapter(version="2024-10-21", endpoint=ENDPOINT, model="gpt4o-prod", key=KEY):
    deployment = DeploymentConfig(id="az", provider="azure", model=model)
    return AzureOpenAIAdapter(
        deployment,
        endpoint=endpoint,
        api_key=SecretStr(key) if key else None,
        api_version=version,
    )


def reply(status, payload, headers=None):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return HttpReply(status, headers or {}, body, 0.01)


def test_classic_call_names_the_deployment_and_the_api_version():
    call = adapter().build_call(REQUEST)
    assert call.method == "POST"
    assert call.url == (
        "https://res.openai.azure.com/openai/deployments/gpt4o-prod/chat/completions"
        "?api-version=2024-10-21"
    )


def test_v1_call_has_no_api_version_and_the_deployment_in_the_body():
    call = adapter(version="v1").build_call(REQUEST)
    assert call.url == "https://res.openai.azure.com/openai/v1/chat/completions"
    assert json.loads(call.body)["model"] == "gpt4o-prod"


@pytest.mark.parametrize("version", ["2024-10-21", "v1"])
def test_the_key_goes_in_api_key_never_as_bearer(version):
    headers = adapter(version=version).build_call(REQUEST).headers
    assert headers["api-key"] == KEY
    assert "authorization" not in {name.lower() for name in headers}
    assert headers["content-type"] == "application/json"


def test_no_key_sends_no_auth_header():
    assert "api-key" not in adapter(key=None).build_call(REQUEST).headers


def test_the_body_is_openais_with_the_deployment_as_model():
    assert json.loads(adapter().build_call(REQUEST).body) == {
        "model": "gpt4o-prod",
        "messages": [{"role": "system", "content": "be terse"}, {"role": "user", "content": "hi"}],
        "max_completion_tokens": 64,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": ["END"],
    }


def test_a_deployment_name_is_escaped_in_the_path():
    url = adapter(model="team a/b").build_call(REQUEST).url
    assert "/openai/deployments/team%20a%2Fb/chat/completions?" in url


@pytest.mark.parametrize(
    "given",
    [
        "https://res.openai.azure.com",
        "https://res.openai.azure.com/",
        "https://res.openai.azure.com/openai",
        "https://res.openai.azure.com/openai/v1/",
    ],
)
def test_the_endpoint_may_be_given_with_or_without_its_openai_path(given):
    assert azure_endpoint(given) == ENDPOINT
    assert adapter(endpoint=given).build_probe().url == (
        "https://res.openai.azure.com/openai/models?api-version=2024-10-21"
    )


def test_probes_list_models_with_the_key_and_the_configured_version():
    classic = adapter(version="2025-04-01-preview").build_probe()
    assert (classic.method, classic.url, classic.body) == (
        "GET",
        "https://res.openai.azure.com/openai/models?api-version=2025-04-01-preview",
        b"",
    )
    assert classic.headers["api-key"] == KEY
    v1 = adapter(version="v1").build_probe()
    assert v1.url == "https://res.openai.azure.com/openai/v1/models"
    assert v1.headers["api-key"] == KEY


def test_from_settings_through_the_registry():
    deployment = DeploymentConfig(id="az", provider="azure", model="dep")
    built = build_adapter(
        deployment,
        settings(AZURE_API_KEY=KEY, AZURE_BASE_URL=f"{ENDPOINT}/", AZURE_API_VERSION="v1"),
    )
    assert isinstance(built, AzureOpenAIAdapter)
    assert built.default_retries == 2
    assert built.build_call(REQUEST).url == f"{ENDPOINT}/openai/v1/chat/completions"
    assert built.build_call(REQUEST).headers["api-key"] == KEY


def test_a_deployment_base_url_overrides_the_variable_and_the_default_is_the_v1_api():
    deployment = DeploymentConfig(
        id="az", provider="azure", model="dep", base_url="https://other.openai.azure.com"
    )
    built = build_adapter(deployment, settings(AZURE_API_KEY=KEY, AZURE_BASE_URL=ENDPOINT))
    assert built.build_call(REQUEST).url == (
        "https://other.openai.azure.com/openai/v1/chat/completions"
    ), "the v1 API: no deployment in the path, no api-version (every model, o3 included)"
    assert json.loads(built.build_call(REQUEST).body)["model"] == "dep"


def test_a_configured_api_version_keeps_the_classic_surface():
    deployment = DeploymentConfig(id="az", provider="azure", model="dep")
    built = build_adapter(
        deployment,
        settings(AZURE_API_KEY=KEY, AZURE_BASE_URL=ENDPOINT, AZURE_API_VERSION="2024-10-21"),
    )
    assert built.build_call(REQUEST).url.endswith(
        "/openai/deployments/dep/chat/completions?api-version=2024-10-21"
    )


def test_without_an_endpoint_the_config_error_names_the_variable():
    deployment = DeploymentConfig(id="az", provider="azure", model="dep")
    with pytest.raises(ConfigError, match="AZURE_BASE_URL"):
        build_adapter(deployment, settings(AZURE_API_KEY=KEY))


def azure_error(code, message, **extra):
    return {"error": {"code": code, "message": message, **extra}}


CONTENT_FILTER_400 = {
    "error": {
        "message": "The response was filtered due to the prompt triggering Azure OpenAI's "
        "content management policy.",
        "type": None,
        "param": "prompt",
        "code": "content_filter",
        "status": 400,
        "innererror": {
            "code": "ResponsibleAIPolicyViolation",
            "content_filter_result": {"hate": {"filtered": True, "severity": "high"}},
        },
    }
}


@pytest.mark.parametrize(
    ("status", "payload", "expected"),
    [
        (400, CONTENT_FILTER_400, ErrorClass.CONTENT_POLICY),
        (
            400,
            azure_error(
                "BadRequest",
                "filtered",
                innererror={"code": "ResponsibleAIPolicyViolation"},
            ),
            ErrorClass.CONTENT_POLICY,
        ),
        (400, azure_error("BadRequest", "API version not supported"), ErrorClass.MODEL_NOT_FOUND),
        (
            400,
            azure_error(
                "BadRequest",
                "Model {modelName} is enabled only for api versions 2024-12-01-preview and later",
            ),
            ErrorClass.MODEL_NOT_FOUND,
        ),
        (404, azure_error("invalid_api_version", "bad version"), ErrorClass.MODEL_NOT_FOUND),
        (404, azure_error("404", "Resource not found"), ErrorClass.MODEL_NOT_FOUND),
        (
            400,
            azure_error(
                "OperationNotSupported",
                "The chatCompletion operation does not work with the specified model.",
            ),
            ErrorClass.MODEL_NOT_FOUND,
        ),
        (
            400,
            azure_error("context_length_exceeded", "This model's maximum context length is 8192"),
            ErrorClass.CONTEXT_LENGTH,
        ),
        (400, azure_error("BadRequest", "'messages' is too short"), ErrorClass.BAD_REQUEST),
        (401, azure_error("401", "Access denied due to invalid subscription key"), ErrorClass.AUTH),
        (403, azure_error("403", "Access denied due to Virtual Network"), ErrorClass.PERMISSION),
        (
            404,
            azure_error(
                "DeploymentNotFound", "The API deployment for this resource does not exist."
            ),
            ErrorClass.MODEL_NOT_FOUND,
        ),
        (429, azure_error("429", "exceeded token rate limit"), ErrorClass.RATE_LIMITED),
        (500, azure_error("InternalServerError", "internal error"), ErrorClass.SERVER_ERROR),
        (503, azure_error("ServiceUnavailable", "try again later"), ErrorClass.OVERLOADED),
        (502, b"<html>Bad Gateway</html>", ErrorClass.SERVER_ERROR),
    ],
)
def test_classification(status, payload, expected):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    error = classify_azure_error(status, body, {})
    assert error.error_class is expected
    assert error.status_code == status
    with pytest.raises(ProviderError) as raised:
        adapter().parse_reply(reply(status, body))
    assert raised.value.error_class is expected


def test_the_content_filter_code_is_kept():
    error = classify_azure_error(400, json.dumps(CONTENT_FILTER_400).encode(), {})
    assert error.provider_code == "content_filter"


def test_429_reads_retry_after_ms_before_retry_after():
    error = classify_azure_error(
        429,
        json.dumps(azure_error("429", "Please retry after 2 seconds")).encode(),
        {"retry-after": "2", "retry-after-ms": "1500"},
    )
    assert (error.error_class, error.retry_after_s) == (ErrorClass.RATE_LIMITED, 1.5)


def test_a_reclassified_error_keeps_retry_details():
    error = classify_azure_error(
        400,
        json.dumps(CONTENT_FILTER_400).encode(),
        {"retry-after": "3", "x-should-retry": "false"},
    )
    assert (error.retry_after_s, error.should_retry) == (3.0, False)


def success(finish_reason="stop", content="Hello!"):
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-4o-2024-08-06",
        "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}],
        "choices": [
            {
                "index": 0,
                "finish_reason": finish_reason,
                "message": {"role": "assistant", "content": content},
                "content_filter_results": {"hate": {"filtered": False, "severity": "safe"}},
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
    }


def test_a_success_is_parsed_with_its_filter_annotations_ignored():
    result = adapter().parse_reply(reply(200, success()))
    assert (result.text, result.finish_reason, result.model) == (
        "Hello!",
        "stop",
        "gpt-4o-2024-08-06",
    )
    assert result.usage is not None
    assert result.usage.total_tokens == 15


def test_filtered_output_is_content_policy():
    with pytest.raises(ProviderError) as raised:
        adapter().parse_reply(reply(200, success("content_filter", None)))
    assert raised.value.error_class is ErrorClass.CONTENT_POLICY


def test_a_broken_body_is_invalid_response():
    with pytest.raises(ProviderError) as raised:
        adapter().parse_reply(reply(200, b'{"choices": ['))
    assert raised.value.error_class is ErrorClass.INVALID_RESPONSE


def test_read_probe_accepts_200_and_classifies_the_rest():
    adapter().read_probe(reply(200, {"object": "list", "data": []}))
    with pytest.raises(ProviderError) as raised:
        adapter().read_probe(reply(401, azure_error("401", "Access denied")))
    assert raised.value.error_class is ErrorClass.AUTH
    with pytest.raises(ProviderError) as version:
        adapter().read_probe(reply(400, azure_error("BadRequest", "API version not supported")))
    assert version.value.error_class is ErrorClass.MODEL_NOT_FOUND


@pytest.mark.parametrize(
    ("model", "base_model", "version", "refused"),
    [
        ("o3", None, "2024-10-21", True),
        ("prod-r", "gpt-5-mini", "2024-10-01-preview", True),
        ("o3", None, "2024-12-01-preview", False),
        ("o3", None, "2025-04-01-preview", False),
        ("o3", None, "v1", False),
        ("gpt4o-prod", None, "2024-10-21", False),
        ("prod-r", None, "2024-10-21", False),  # a name the table cannot place: not caught
    ],
)
def test_the_probe_fails_where_a_reasoning_models_calls_would(model, base_model, version, refused):
    deployment = DeploymentConfig(id="az", provider="azure", model=model, base_model=base_model)
    adapter = AzureOpenAIAdapter(
        deployment, endpoint=ENDPOINT, api_key=SecretStr(KEY), api_version=version
    )
    models_list = HttpReply(200, {}, b'{"object": "list", "data": []}', 0.01)
    if not refused:
        adapter.read_probe(models_list)
        return
    with pytest.raises(ProviderError) as caught:
        adapter.read_probe(models_list)
    assert caught.value.error_class is ErrorClass.MODEL_NOT_FOUND
    assert "2024-12-01-preview" in caught.value.message
    assert version in caught.value.message
