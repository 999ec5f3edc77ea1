"""Each adapter against its simulator, for a model that refuses a parameter: the refusal the
simulator answers (what the service answers) is read as unsupported_parameter with the
parameter named as turnout's request names it, and the request without it succeeds."""

import pytest

from ops.simulator.anthropic_sim import AnthropicSimulator
from ops.simulator.azure_sim import AzureSimulator
from ops.simulator.bedrock_sim import BedrockSimulator
from ops.simulator.openai_sim import OpenAISimulator
from routing.errors import UnsupportedParameter
from routing.models import CompletionRequest
from tests.providers.harness import adapter_for, complete, serving, settings

KEY = "wire-refusal-key-0123456789"
AWS = {
    "AWS_ACCESS_KEY_ID": "AKIDWIREREF01",
    "AWS_SECRET_ACCESS_KEY": "wire/secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def request(**fields):
    messages = fields.pop("messages", [{"role": "user", "content": "hi"}])
    return CompletionRequest.model_validate({"messages": messages, "max_tokens": 256, **fields})


PREFILLED = [{"role": "user", "content": "JSON please"}, {"role": "assistant", "content": "{"}]
CASES = [
    ("openai", "openai", "o3", {"temperature": 0.3}, "temperature"),
    ("openai", "openai", "o4-mini", {"stop": ["END"]}, "stop"),
    ("openai", "openai", "gpt-5", {"top_p": 0.5}, "top_p"),
    ("openai", "xai", "grok-4", {"stop": ["END"]}, "stop"),
    ("azure", "azure", "o3", {"temperature": 0.3}, "temperature"),
    ("anthropic", "anthropic", "claude-opus-4-7", {"temperature": 0.3}, "temperature"),
    ("anthropic", "anthropic", "claude-opus-4-7", {"top_p": 0.5}, "top_p"),
    ("anthropic", "anthropic", "claude-sonnet-4-6", {"messages": PREFILLED}, "assistant_prefill"),
    ("bedrock", "bedrock", "anthropic.claude-opus-4-7-v1:0", {"temperature": 0.3}, "temperature"),
    ("bedrock", "bedrock", "anthropic.claude-opus-4-7-v1:0", {"top_p": 0.5}, "top_p"),
    (
        "bedrock",
        "bedrock",
        "anthropic.claude-sonnet-4-6",
        {"messages": PREFILLED},
        "assistant_prefill",
    ),
]


def simulator(kind):
    if kind == "openai":
        return OpenAISimulator(name="oai", api_key=KEY)
    if kind == "azure":
        return AzureSimulator(name="az", api_key=KEY)
    if kind == "anthropic":
        return AnthropicSimulator(name="ant", api_key=KEY)
    return BedrockSimulator(name="bdr", api_key=f"{AWS['AWS_ACCESS_KEY_ID']}:wire/secret")


@pytest.mark.parametrize(
    ("kind", "provider", "model", "fields", "param"),
    CASES,
    ids=[f"{c[1]}-{c[2]}-{c[4]}" for c in CASES],
)
def test_a_refused_parameter_is_named_and_the_request_without_it_succeeds(
    kind, provider, model, fields, param
):
    with serving(simulator(kind)) as server:
        path = "/v1" if kind == "openai" else ""
        env = settings(
            OPENAI_API_KEY=KEY, XAI_API_KEY=KEY, AZURE_API_KEY=KEY, ANTHROPIC_API_KEY=KEY, **AWS
        )
        adapter = adapter_for(provider, model, env, base_url=f"{server.url}{path}")
        with pytest.raises(UnsupportedParameter) as refused:
            complete(adapter, request(**fields))
        assert refused.value.param == param
        assert refused.value.status_code == 400
        assert refused.value.route_at_fault is False
        if param != "assistant_prefill":
            assert complete(adapter, request()).text
