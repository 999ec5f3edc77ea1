"""The Azure OpenAI adapter against the Azure simulator over HTTP, classic and v1: what goes on
the wire, what comes back, and the class of every failure Azure answers with."""

import pytest

from ops.simulator.azure_sim import FILTER_OUTPUT_MARKER, AzureSimulator
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

KEY = "azure-wire-key-0123456789abcdef"
DEPLOYMENT = "gpt4o-prod"
MESSAGES = [{"role": "system", "content": "be terse"}, {"role": "user", "content": "hi"}]
REQUEST = CompletionRequest.model_validate(
    {"messages": MESSAGES, "max_tokens": 50, "temperature": 0.5, "stop": ["END"]}
)
BODY = {
    "model": DEPLOYMENT,
    "messages": MESSAGES,
    "max_completion_tokens": 50,
    "temperature": 0.5,
    "stop": ["END"],
}
VERSIONS = ["2024-10-21", "v1"]


@pytest.fixture
def server():
    with serving(AzureSimulator(name="az", api_key=KEY, models=[DEPLOYMENT])) as running:
        yield running


def adapter(server, version="2024-10-21", key=KEY, deployment=DEPLOYMENT):
    env = settings(AZURE_API_KEY=key, AZURE_BASE_URL=server.url, AZURE_API_VERSION=version)
    return adapter_for("azure", deployment, env)


def test_classic_request_on_the_wire_and_the_parsed_result(server):
    result = complete(adapter(server), REQUEST)
    (sent,) = recent(server)
    assert (sent["method"], sent["path"], sent["query"]) == (
        "POST",
        f"/openai/deployments/{DEPLOYMENT}/chat/completions",
        {"api-version": "2024-10-21"},
    )
    assert sent["headers"]["api-key"] == "(value) [hidden]"
    assert "authorization" not in sent["headers"]
    assert sent["headers"]["content-type"] == "application/json"
    assert sent["body"] == BODY
    assert sent["auth_ok"] is True
    assert result.text.startswith(f"az ({DEPLOYMENT}) answers")
    assert (result.finish_reason, result.model) == ("stop", DEPLOYMENT)
    assert result.usage is not None
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens


def test_v1_request_on_the_wire_and_the_parsed_result(server):
    result = complete(adapter(server, "v1"), REQUEST)
    (sent,) = recent(server)
    assert (sent["method"], sent["path"], sent["query"]) == (
        "POST",
        "/openai/v1/chat/completions",
        {},
    )
    assert sent["headers"]["api-key"] == "(value) [hidden]"
    assert "authorization" not in sent["headers"]
    assert sent["body"] == BODY
    assert result.text.startswith(f"az ({DEPLOYMENT}) answers")


def test_the_injected_400_is_azures_prompt_filter(server):
    set_faults(server, fail_rate=1.0, fail_status=400)
    with pytest.raises(ProviderError) as caught:
        complete(adapter(server), REQUEST)
    assert caught.value.provider_code == "content_filter"
    assert "content management policy" in caught.value.message


@pytest.mark.parametrize("version", VERSIONS)
def test_429_honours_retry_after_ms_before_retry_after(server, version):
    # The simulator sends retry-after rounded up to whole seconds (2) and retry-after-ms (1500).
    set_faults(server, fail_rate=1.0, fail_status=429, retry_after_s=1.5)
    with pytest.raises(ProviderError) as caught:
        complete(adapter(server, version), REQUEST)
    assert caught.value.error_class is ErrorClass.RATE_LIMITED
    assert caught.value.retry_after_s == 1.5


@pytest.mark.parametrize("version", VERSIONS)
def test_an_unknown_deployment_is_model_not_found(server, version):
    with pytest.raises(ProviderError) as caught:
        complete(adapter(server, version, deployment="no-such-deployment"), REQUEST)
    assert caught.value.error_class is ErrorClass.MODEL_NOT_FOUND
    assert caught.value.provider_code == "DeploymentNotFound"


def test_an_unknown_api_version_fails_over_and_the_probe_reports_it(server):
    stale = adapter(server, "2019-01-01")
    with pytest.raises(ProviderError) as caught:
        complete(stale, REQUEST)
    assert (caught.value.error_class, caught.value.status_code) == (
        ErrorClass.MODEL_NOT_FOUND,
        400,
    )
    assert "API version not supported" in caught.value.message
    with pytest.raises(ProviderError) as probed:
        probe(stale)
    assert probed.value.error_class is ErrorClass.MODEL_NOT_FOUND


@pytest.mark.parametrize("version", VERSIONS)
def test_filtered_output_with_200_is_content_policy(server, version):
    filtered = CompletionRequest.from_prompt(f"tell me {FILTER_OUTPUT_MARKER}")
    with pytest.raises(ProviderError) as caught:
        complete(adapter(server, version), filtered)
    assert (caught.value.error_class, caught.value.status_code) == (
        ErrorClass.CONTENT_POLICY,
        200,
    )


@pytest.mark.parametrize("version", VERSIONS)
def test_the_simulator_records_a_refused_key(server, version):
    """(That it is auth, code "401", for call and probe: test_protocol_contract.py.)"""
    with pytest.raises(ProviderError):
        complete(adapter(server, version, key="azure-wrong-key-0123456789"), REQUEST)
    assert recent(server)[-1]["auth_ok"] is False
