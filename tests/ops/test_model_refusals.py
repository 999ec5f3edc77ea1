"""The simulators refuse, for a model named like the real one, what the real service refuses,
with its body and status: checked through the official SDKs, which parse those bodies."""

from typing import Any

import anthropic
import boto3
import openai
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from ops.simulator.anthropic_sim import AnthropicSimulator
from ops.simulator.azure_sim import AzureSimulator
from ops.simulator.bedrock_sim import BedrockSimulator
from ops.simulator.openai_sim import OpenAISimulator
from ops.simulator.server import ServerThread

KEY = "sim-refusal-key-0123456789"
USER: Any = [{"role": "user", "content": "hi"}]
PREFILL = (
    "This model does not support assistant message prefill. The conversation must end with a "
    "user message."
)


@pytest.fixture(scope="module")
def openai_server():
    with ServerThread(OpenAISimulator(name="oai", api_key=KEY)) as server:
        yield server


def chat(server, **kwargs):
    client = openai.OpenAI(api_key=KEY, base_url=f"{server.url}/v1", max_retries=0)
    return client.chat.completions.create(messages=USER, **kwargs)


@pytest.mark.parametrize(
    ("model", "kwargs", "param", "code", "message"),
    [
        (
            "o3",
            {"temperature": 0.2},
            "temperature",
            "unsupported_value",
            "Unsupported value: 'temperature' does not support 0.2 with this model. Only the "
            "default (1) value is supported.",
        ),
        ("gpt-5-mini", {"top_p": 0.5}, "top_p", "unsupported_value", None),
        (
            "o3",
            {"stop": ["END"]},
            "stop",
            "unsupported_parameter",
            "Unsupported parameter: 'stop' is not supported with this model.",
        ),
        ("o4-mini", {"max_tokens": 10}, "max_tokens", "unsupported_parameter", None),
    ],
)
def test_openai_reasoning_models(openai_server, model, kwargs, param, code, message):
    with pytest.raises(openai.BadRequestError) as refused:
        chat(openai_server, model=model, **kwargs)
    assert refused.value.status_code == 400
    assert (refused.value.param, refused.value.code) == (param, code)
    if message:
        body: Any = refused.value.body
        assert body["message"] == message


def test_what_reasoning_models_accept_and_other_models_are_untouched(openai_server):
    assert chat(openai_server, model="o3", max_completion_tokens=50, temperature=1).choices
    assert chat(openai_server, model="o3-mini", stop=["END"]).choices
    assert chat(openai_server, model="gpt-4o-mini", temperature=0.2, stop=["x"]).choices
    assert chat(openai_server, model="gpt-5-chat-latest", temperature=0.2).choices


def test_xai_grok_reasoning_models_refuse_stop(openai_server):
    with pytest.raises(openai.BadRequestError) as refused:
        chat(openai_server, model="grok-4", stop=["END"])
    assert refused.value.status_code == 400
    assert refused.value.response.json() == {
        "code": "Client specified an invalid argument",
        "error": "Argument not supported on this model: stop",
    }
    assert chat(openai_server, model="grok-3", stop=["END"]).choices


def test_azure_refuses_a_reasoning_deployment_on_an_old_api_version_and_serves_v1():
    sim = AzureSimulator(name="az", api_key=KEY, deployment_models={"reasoner": "o3"})
    with ServerThread(sim) as server:
        old = openai.AzureOpenAI(
            api_key=KEY, azure_endpoint=server.url, api_version="2024-10-21", max_retries=0
        )
        with pytest.raises(openai.BadRequestError) as refused:
            old.chat.completions.create(model="reasoner", messages=USER)
        assert refused.value.response.json()["error"] == {
            "code": "BadRequest",
            "message": "Model o3 is enabled only for api versions 2024-12-01-preview and later",
        }
        v1 = openai.OpenAI(api_key=KEY, base_url=f"{server.url}/openai/v1/", max_retries=0)
        assert v1.chat.completions.create(model="reasoner", messages=USER).choices
        with pytest.raises(openai.BadRequestError) as refused:
            v1.chat.completions.create(model="reasoner", messages=USER, temperature=0.3)
        assert refused.value.param == "temperature"


@pytest.fixture(scope="module")
def anthropic_client():
    with ServerThread(AnthropicSimulator(name="ant", api_key=KEY)) as server:
        yield anthropic.Anthropic(api_key=KEY, base_url=server.url, max_retries=0)


@pytest.mark.parametrize(
    ("model", "kwargs", "messages", "message"),
    [
        (
            "claude-opus-4-7",
            {"extra_body": {"temperature": 0.2}},
            USER,
            "`temperature` is deprecated for this model.",
        ),
        (
            "claude-opus-4-8",
            {"extra_body": {"top_p": 0.9}},
            USER,
            "`top_p` is deprecated for this model.",
        ),
        ("claude-sonnet-4-6", {}, [*USER, {"role": "assistant", "content": "{"}], PREFILL),
    ],
)
def test_claude_refusals(anthropic_client, model, kwargs, messages, message):
    with pytest.raises(anthropic.BadRequestError) as refused:
        anthropic_client.messages.create(model=model, max_tokens=64, messages=messages, **kwargs)
    assert refused.value.status_code == 400
    body: Any = refused.value.body
    assert body["error"] == {"type": "invalid_request_error", "message": message}


def test_older_claudes_accept_sampling_and_prefill(anthropic_client):
    prefilled = [*USER, {"role": "assistant", "content": "{"}]
    assert anthropic_client.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=64,
        messages=prefilled,
        extra_body={"temperature": 0.2},
    ).content
    assert anthropic_client.messages.create(
        model="claude-sonnet-4-6", max_tokens=64, messages=USER, extra_body={"temperature": 0.2}
    ).content


def test_bedrock_passes_claudes_refusals_through_as_validation_exceptions():
    sim = BedrockSimulator(name="bdr", api_key="AKIDREFUSAL01:refusal/secret", region="us-east-1")
    with ServerThread(sim) as server:
        client = boto3.client(
            "bedrock-runtime",
            region_name="us-east-1",
            endpoint_url=server.url,
            aws_access_key_id="AKIDREFUSAL01",
            aws_secret_access_key="refusal/secret",
            config=Config(retries={"max_attempts": 1}),
        )
        with pytest.raises(ClientError) as refused:
            client.converse(
                modelId="us.anthropic.claude-opus-4-7-v1:0",
                messages=[{"role": "user", "content": [{"text": "hi"}]}],
                inferenceConfig={"temperature": 0.2},
            )
        error = refused.value.response["Error"]
        assert error["Code"] == "ValidationException"
        assert error["Message"] == (
            "The model returned the following errors: `temperature` is deprecated for this model."
        )
        with pytest.raises(ClientError) as refused:
            client.converse(
                modelId="anthropic.claude-sonnet-4-6",
                messages=[
                    {"role": "user", "content": [{"text": "hi"}]},
                    {"role": "assistant", "content": [{"text": "{"}]},
                ],
            )
        assert refused.value.response["Error"]["Message"] == PREFILL
