"""Azure OpenAI with ``auth: entra_id`` against the Azure simulator over HTTP, through
azure-identity's real DefaultAzureCredential: the simulator is also an App Service
managed-identity endpoint (IDENTITY_ENDPOINT + IDENTITY_HEADER, which DefaultAzureCredential's
ManagedIdentityCredential reads), issues the token, and accepts only tokens it issued, until
they expire. No api-key is sent."""

from __future__ import annotations

import os

import pytest

from ops.simulator.azure_sim import AzureSimulator
from routing.errors import ErrorClass, ProviderError
from routing.models import CompletionRequest
from tests.providers.harness import adapter_for, complete, probe, recent, serving, settings
from workers.providers.azure_credentials import EntraTokenCache

IDENTITY_SECRET = "identity-header-secret-0123456789"
REQUEST = CompletionRequest.model_validate(
    {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 20}
)


@pytest.fixture
def simulator():
    return AzureSimulator(api_key="the-resource-api-key-0123", identity_header=IDENTITY_SECRET)


@pytest.fixture
def server(simulator, monkeypatch):
    for name in list(os.environ):
        if name.startswith(("AZURE_", "IDENTITY_", "MSI_")):
            monkeypatch.delenv(name)
    with serving(simulator) as running:
        monkeypatch.setenv("IDENTITY_ENDPOINT", f"{running.url}/msi/token")
        monkeypatch.setenv("IDENTITY_HEADER", IDENTITY_SECRET)
        yield running


def entra_adapter(server, version="v1"):
    env = settings(AZURE_BASE_URL=server.url, AZURE_API_VERSION=version)
    return adapter_for("azure", "my-deployment", env, auth="entra_id")


@pytest.mark.parametrize("version", ["v1", "2024-10-21"])
def test_a_managed_identity_token_is_sent_as_bearer_and_no_api_key(server, simulator, version):
    adapter = entra_adapter(server, version)
    first = complete(adapter, REQUEST)
    complete(adapter, REQUEST)
    probe(adapter)
    assert first.text
    sent = recent(server)
    assert [r["auth_ok"] for r in sent] == [True, True]
    assert all("api-key" not in r["headers"] for r in sent)
    assert all(r["headers"]["authorization"] == "Bearer [hidden]" for r in sent)
    assert len(simulator.entra_tokens) == 1, "one token, cached for the calls and the probe"
    assert adapter.entra_tokens is not None
    assert adapter.entra_tokens.refreshes == 1


def test_a_token_near_expiry_is_replaced_before_a_call_carries_it(server, simulator):
    simulator.entra_token_lifetime_s = 20  # inside the 5-minute margin from the start
    adapter = entra_adapter(server)
    complete(adapter, REQUEST)
    complete(adapter, REQUEST)
    assert adapter.entra_tokens is not None
    assert adapter.entra_tokens.refreshes == 2, "within the margin: asked again before use"
    assert len(simulator.entra_tokens) == 2, "and azure-identity (MSAL) fetched a new one"
    assert all(r["auth_ok"] for r in recent(server))


def test_a_refused_token_is_auth_and_is_dropped_for_the_next_call(server, simulator):
    adapter = entra_adapter(server)
    complete(adapter, REQUEST)
    simulator.entra_tokens.clear()  # revoked
    with pytest.raises(ProviderError) as caught:
        complete(adapter, REQUEST)
    assert caught.value.error_class is ErrorClass.AUTH
    assert "Access token is missing, invalid" in caught.value.message
    assert adapter.entra_tokens is not None
    assert adapter.entra_tokens._token is None


def test_a_wrong_identity_secret_is_auth_with_no_token_in_the_text(server, monkeypatch):
    monkeypatch.setenv("IDENTITY_HEADER", "not-the-secret")
    adapter = entra_adapter(server)
    with pytest.raises(ProviderError) as caught:
        adapter.build_call(REQUEST)
    assert caught.value.error_class is ErrorClass.AUTH
    assert "Entra ID" in caught.value.message
    assert "not-the-secret" not in caught.value.message


def test_api_key_deployments_need_no_azure_identity(server, simulator):
    env = settings(AZURE_BASE_URL=server.url, AZURE_API_KEY="the-resource-api-key-0123")
    adapter = adapter_for("azure", "my-deployment", env)
    complete(adapter, REQUEST)
    assert recent(server)[-1]["headers"]["api-key"] == "(value) [hidden]"
    assert "authorization" not in recent(server)[-1]["headers"]


def test_the_cache_refreshes_within_the_margin_and_keeps_a_live_token_on_failure():
    """The cache's own rules, with a credential whose tokens and failures the test decides."""

    class Token:
        def __init__(self, token, expires_on):
            self.token, self.expires_on, self.refresh_on = token, expires_on, None

    now = [1000.0]
    answers: list[object] = []

    class Credential:
        def get_token_info(self, scope):
            assert scope == "https://cognitiveservices.azure.com/.default"
            answer = answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer

    cache = EntraTokenCache(Credential, clock=lambda: now[0], cooldown_s=0)
    answers.append(Token("t1", 1000 + 3600))
    assert cache.token() == "t1"
    now[0] = 1000 + 3600 - 299  # inside the 5-minute margin: refreshed
    answers.append(Token("t2", now[0] + 3600))
    assert cache.token() == "t2"
    now[0] += 3600 - 200
    from azure.core.exceptions import ClientAuthenticationError

    answers.append(ClientAuthenticationError("refused"))
    assert cache.token() == "t2", "still valid for 200 s: kept while the refresh fails"
    now[0] += 190
    answers.append(ClientAuthenticationError("refused"))
    with pytest.raises(ProviderError) as caught:
        cache.token()
    assert caught.value.error_class is ErrorClass.AUTH
    assert cache.refreshes == 2


def test_the_openai_sdk_with_azure_identity_sends_the_same_auth_headers(server, simulator):
    """Microsoft's documented pattern: AzureOpenAI(azure_ad_token_provider=
    get_bearer_token_provider(DefaultAzureCredential(), scope)) against the same simulator and
    managed-identity endpoint: the SDK's auth headers and ours are the same."""
    import openai
    from azure.identity import DefaultAzureCredential, get_bearer_token_provider

    provider = get_bearer_token_provider(
        DefaultAzureCredential(), "https://cognitiveservices.azure.com/.default"
    )
    client = openai.AzureOpenAI(
        azure_endpoint=server.url,
        api_version="2024-10-21",
        azure_ad_token_provider=provider,
        max_retries=0,
    )
    client.chat.completions.create(
        model="my-deployment", messages=[{"role": "user", "content": "hi"}], max_tokens=20
    )
    complete(entra_adapter(server, "2024-10-21"), REQUEST)
    theirs, ours = recent(server)[-2:]
    assert theirs["auth_ok"]
    assert ours["auth_ok"]
    for name in ("authorization", "api-key"):
        assert theirs["headers"].get(name) == ours["headers"].get(name)
    assert theirs["path"] == ours["path"]
