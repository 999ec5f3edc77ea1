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


@pytest.mark.parametrize("version", VERSIONS)
def test_probes_pass_with_the_right_key(server, version):
    probe(adapter(server, version))


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, ErrorClass.CONTENT_POLICY),
        (401, ErrorClass.AUTH),
        (403, ErrorClass.PERMISSION),
        (404, ErrorClass.MODEL_NOT_FOUND),
        (500, ErrorClass.SERVER_ERROR),
        (503, ErrorClass.OVERLOADED),
    ],
)
@pytest.mark.parametrize("version", VERSIONS)
def test_every_failure_the_simulator_injects_has_its_class(server, version, status, error_class):
    set_faults(server, fail_rate=1.0, fail_status=status, retry_after_s=2)
    with pytest.raises(ProviderError) as caught:
        complete(adapter(server, version), REQUEST)
    assert caught.value.error_class is error_class
    assert caught.value.status_code == status
    assert caught.value.retry_after_s == 2.0


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
def test_a_wrong_key_is_auth_for_the_call_and_the_probe(server, version):
    wrong = adapter(server, version, key="azure-wrong-key-0123456789")
    with pytest.raises(ProviderError) as caught:
        complete(wrong, REQUEST)
    assert (caught.value.error_class, caught.value.status_code) == (ErrorClass.AUTH, 401)
    assert caught.value.provider_code == "401"
    assert recent(server)[-1]["auth_ok"] is False
    with pytest.raises(ProviderError) as probed:
        probe(wrong)
    assert probed.value.error_class is ErrorClass.AUTH


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
def test_malformed_and_hung_replies(server, version):
    set_faults(server, malformed=True)
    with pytest.raises(ProviderError) as caught:
        complete(adapter(server, version), REQUEST)
    assert caught.value.error_class is ErrorClass.INVALID_RESPONSE
    set_faults(server, malformed=False, hang=True)
    with pytest.raises(ProviderError) as hung:
        complete(adapter(server, version), REQUEST, timeout_s=0.3)
    assert hung.value.error_class is ErrorClass.TIMEOUT
