"""LiteLLM-style model names in the config: ``anthropic/claude-sonnet-4-5`` with no
``provider:`` is shorthand; a prefix that contradicts ``provider:`` is a config error naming
both; ids that really hold a ``/`` (OpenRouter, Groq, Together, vLLM) are left alone. And the
per-deployment ``region`` / ``location`` / ``auth`` keys, each for its own provider."""

import pytest

from routing.config import parse_config
from routing.errors import ConfigError


def deployments(*entries):
    return parse_config({"deployments": list(entries)}).deployments


def one(**entry):
    (deployment,) = deployments({"id": "d", **entry}).values()
    return deployment


@pytest.mark.parametrize(
    ("model", "provider", "bare"),
    [
        ("anthropic/claude-sonnet-4-5", "anthropic", "claude-sonnet-4-5"),
        ("openai/gpt-4o-mini", "openai", "gpt-4o-mini"),
        (
            "bedrock/anthropic.claude-3-haiku-20240307-v1:0",
            "bedrock",
            "anthropic.claude-3-haiku-20240307-v1:0",
        ),
        ("vertex_ai/gemini-2.5-pro", "vertex", "gemini-2.5-pro"),
        ("together_ai/meta-llama/Llama-3-70b", "together", "meta-llama/Llama-3-70b"),
        ("openrouter/anthropic/claude-3.5-sonnet", "openrouter", "anthropic/claude-3.5-sonnet"),
        ("groq/openai/gpt-oss-120b", "groq", "openai/gpt-oss-120b"),
        ("ollama_chat/llama3.2", "ollama", "llama3.2"),
    ],
)
def test_a_provider_prefix_without_provider_is_the_shorthand(model, provider, bare):
    deployment = one(model=model)
    assert (deployment.provider, deployment.model) == (provider, bare)


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openrouter", "anthropic/claude-3.5-sonnet"),
        ("openrouter", "openrouter/auto"),
        ("groq", "openai/gpt-oss-120b"),
        ("together", "meta-llama/Llama-3.3-70B-Instruct-Turbo"),
        ("vllm", "meta-llama/llama-3.1-8b"),
        ("vertex", "publishers/google/models/gemini-2.5-flash"),
    ],
)
def test_ids_that_hold_a_slash_are_kept_as_given(provider, model):
    deployment = one(provider=provider, model=model)
    assert (deployment.provider, deployment.model) == (provider, model)


def test_a_prefix_naming_the_same_provider_is_dropped():
    assert one(provider="anthropic", model="anthropic/claude-sonnet-4-5").model == (
        "claude-sonnet-4-5"
    )


def test_a_prefix_that_contradicts_provider_is_an_error_naming_both():
    with pytest.raises(ConfigError) as caught:
        one(provider="openai", model="anthropic/claude-sonnet-4-5")
    text = str(caught.value)
    assert "deployments[0].model" in text
    assert "'anthropic'" in text
    assert "'openai'" in text
    assert "set provider: anthropic" in text


def test_without_provider_and_without_a_known_prefix_provider_is_still_required():
    with pytest.raises(ConfigError, match="provider"):
        one(model="meta-llama/llama-3.1-8b")


def test_region_location_and_auth_belong_to_their_providers():
    assert one(provider="bedrock", model="m", region="eu-west-3").region == "eu-west-3"
    assert one(provider="vertex", model="m", location="global").location == "global"
    entra = one(provider="azure", model="m", auth="entra_id")
    assert "AZURE_API_KEY" not in entra.required_envs, "an Entra ID token replaces the key"
    with pytest.raises(ConfigError) as caught:
        deployments(
            {"id": "a", "provider": "openai", "model": "gpt-4o", "region": "us-east-1"},
            {"id": "b", "provider": "bedrock", "model": "m", "location": "global"},
        )
    text = str(caught.value)
    assert "deployments[0].region: region: applies to bedrock deployments only" in text
    assert "deployments[1].location: location: applies to vertex deployments only" in text


def test_bedrock_and_vertex_need_no_credential_variable_up_front():
    """Bedrock's credentials come from botocore's chain, Vertex's location defaults to global:
    neither can be judged missing from the variables alone."""
    assert one(provider="bedrock", model="m").required_envs == ()
    assert one(provider="vertex", model="m").required_envs == ("GOOGLE_CLOUD_PROJECT",)
