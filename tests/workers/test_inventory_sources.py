"""``turnout providers check`` says where an unreachable URL came from, and only what is true."""

from __future__ import annotations

from routing.catalog import PROVIDERS
from routing.config import DeploymentConfig
from tests.providers.harness import settings
from workers.providers.inventory import hint, probe_deployment


def unreachable_hint(provider, deployment=None, **env):
    spec = PROVIDERS[provider]
    return hint(spec, settings(**env), "unreachable", deployment or probe_deployment(spec, None))


def test_an_unset_variable_is_never_named_as_the_source():
    text = unreachable_hint("openai", OPENAI_API_KEY="sk-x")
    assert "set by OPENAI_BASE_URL" not in text
    assert "https://api.openai.com/v1 (the default; OPENAI_BASE_URL is not set)" in text


def test_a_set_variable_is_named_with_the_url_it_gave():
    text = unreachable_hint("openai", OPENAI_BASE_URL="http://127.0.0.1:9/v1")
    assert "http://127.0.0.1:9/v1 (set by OPENAI_BASE_URL)" in text


def test_a_deployments_base_url_wins_and_is_named_as_the_source():
    deployment = DeploymentConfig(
        id="gw", provider="openai", model="gpt-4o-mini", base_url="http://gw.internal:8080/v1"
    )
    text = unreachable_hint("openai", deployment, OPENAI_BASE_URL="http://elsewhere/v1")
    assert "http://gw.internal:8080/v1 (base_url of deployment gw in the config)" in text
    assert "OPENAI_BASE_URL" not in text


def test_the_url_shown_carries_no_credentials():
    text = unreachable_hint("vllm", VLLM_API_BASE="http://user:pw@gpu:8000/v1?token=t0ken")
    assert "pw@" not in text
    assert "t0ken" not in text
    assert "http://gpu:8000/v1" in text
