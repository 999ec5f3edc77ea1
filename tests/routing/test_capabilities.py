"""The model table's capabilities: version rules, families, and a deployment's overrides."""

import pytest

from routing.capabilities import model_capabilities
from routing.config import parse_config


@pytest.mark.parametrize(
    ("provider", "model", "parameters", "reasoning", "prefill"),
    [
        ("openai", "gpt-4o-mini", {"temperature", "top_p", "stop"}, False, True),
        ("openai", "o3", set(), True, True),
        ("openai", "o3-2025-04-16", set(), True, True),
        ("openai", "o4-mini", set(), True, True),
        ("openai", "o3-mini", {"stop"}, True, True),
        ("openai", "gpt-5", set(), True, True),
        ("openai", "gpt-5-mini", set(), True, True),
        ("openai", "gpt-5.1", set(), True, True),
        ("openai", "gpt-5-chat-latest", {"temperature", "top_p", "stop"}, False, True),
        ("azure", "o3", set(), True, True),
        ("anthropic", "claude-sonnet-4-5-20250929", {"temperature", "top_p", "stop"}, False, True),
        ("anthropic", "claude-opus-4-20250514", {"temperature", "top_p", "stop"}, False, True),
        ("anthropic", "claude-sonnet-4-6", {"temperature", "top_p", "stop"}, False, False),
        ("anthropic", "claude-opus-4-7", {"stop"}, False, False),
        ("anthropic", "claude-opus-4-8", {"stop"}, False, False),
        ("anthropic", "claude-opus-5", {"stop"}, False, False),
        ("bedrock", "us.anthropic.claude-opus-4-7-v1:0", {"stop"}, False, False),
        (
            "bedrock",
            "anthropic.claude-3-haiku-20240307-v1:0",
            {"temperature", "top_p", "stop"},
            False,
            True,
        ),
        ("xai", "grok-4", {"temperature", "top_p"}, True, True),
        ("xai", "grok-3-mini", {"temperature", "top_p"}, True, True),
        ("xai", "grok-3", {"temperature", "top_p", "stop"}, False, True),
        ("groq", "llama-3.3-70b-versatile", {"temperature", "top_p", "stop"}, False, True),
    ],
)
def test_version_rules_and_families(provider, model, parameters, reasoning, prefill):
    capabilities = model_capabilities(provider, model)
    assert capabilities.parameters == parameters
    assert capabilities.reasoning is reasoning
    assert capabilities.assistant_prefill is prefill


def test_the_rules_that_decided_are_named_and_the_context_window_comes_from_the_table():
    capabilities = model_capabilities("anthropic", "claude-opus-4-7")
    assert capabilities.families[0] == "claude >= 4.7"
    assert model_capabilities("openai", "o3").context_window == 200000
    assert model_capabilities("vertex", "gemini-3-pro-preview").locations == ("global",)
    assert model_capabilities("gemini", "gemini-3-pro-preview").locations is None


def test_a_deployment_corrects_the_table_and_names_the_model_it_serves():
    config = parse_config(
        {
            "deployments": [
                {
                    "id": "azure-reasoning",
                    "provider": "azure",
                    "model": "prod-r",
                    "base_model": "o3",
                },
                {
                    "id": "custom",
                    "provider": "openai",
                    "model": "o3",
                    "capabilities": {"parameters": ["stop"], "images": False},
                    "context_window": 50000,
                },
            ]
        }
    )
    served = config.deployments["azure-reasoning"].model_capabilities
    assert (served.reasoning, served.parameters) == (True, frozenset())
    assert config.deployments["azure-reasoning"].model_info.context_window == 200000
    custom = config.deployments["custom"].model_capabilities
    assert custom.parameters == {"stop"}
    assert custom.images is False
    assert custom.context_window == 50000
    assert custom.families[0] == "deployment config"


def test_an_unknown_parameter_in_an_override_is_a_config_error():
    from routing.errors import ConfigError

    with pytest.raises(ConfigError, match="capabilities"):
        parse_config(
            {
                "deployments": [
                    {
                        "id": "d",
                        "provider": "openai",
                        "model": "o3",
                        "capabilities": {"parameters": ["seed"]},
                    }
                ]
            }
        )


def test_learnt_refusals_narrow_the_table():
    capabilities = model_capabilities("openai", "gpt-4o").refusing(
        frozenset({"stop", "assistant_prefill"})
    )
    assert capabilities.parameters == {"temperature", "top_p"}
    assert not capabilities.accepts("assistant_prefill")
