"""Conformance with google-genai, Google's official SDK, for both front doors: for the same
prompt our adapters send what the SDK sends (method, path, auth header, body), both read the
simulators' replies the same way (text, finish reason, usage), and an injected error is the SDK's
ClientError/ServerError with that code and our matching class.

The SDK adds fields of its own (a ``role`` on systemInstruction, say), so bodies are compared
on what both send, and we must send nothing the SDK would not. It also spells some keys in
snake_case (``thinking_budget``), which Google's JSON parser accepts; keys are compared in
camelCase."""

import re
from typing import Any

import pytest
from google import genai
from google.genai import errors, types
from google.oauth2 import service_account

from ops.simulator.gemini_sim import GeminiSimulator
from ops.simulator.vertex_sim import VertexSimulator
from routing.errors import ErrorClass, ProviderError
from routing.models import CompletionRequest
from tests.providers.harness import (
    ServiceAccountKey,
    adapter_for,
    complete,
    recent,
    serving,
    set_faults,
    settings,
)
from tests.providers.test_vertex_wire import LOCATION, PROJECT

KEY = "AIza-conformance-0123456789abcdef"
MODEL = "gemini-2.5-pro"
REQUEST = CompletionRequest.model_validate(
    {
        "messages": [
            {"role": "system", "content": "be terse"},
            {"role": "user", "content": "Hi there"},
        ],
        "max_tokens": 64,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": ["END"],
    }
)
CONFIG = types.GenerateContentConfig(
    system_instruction="be terse",
    max_output_tokens=64,
    temperature=0.2,
    top_p=0.9,
    stop_sequences=["END"],
)
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]


def camel(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            re.sub(r"_([a-z])", lambda m: m.group(1).upper(), k): camel(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [camel(v) for v in value]
    return value


def assert_equivalent(mine: Any, theirs: Any, where: str = "body") -> None:
    """Everything we send, the SDK sends too, with the same value."""
    if isinstance(mine, dict):
        assert isinstance(theirs, dict), where
        assert set(mine) <= set(theirs), f"{where}: we send {set(mine) - set(theirs)} extra"
        for key, value in mine.items():
            assert_equivalent(value, theirs[key], f"{where}.{key}")
    elif isinstance(mine, list):
        assert isinstance(theirs, list), where
        assert len(mine) == len(theirs), where
        for index, (a, b) in enumerate(zip(mine, theirs, strict=True)):
            assert_equivalent(a, b, f"{where}[{index}]")
    else:
        assert mine == theirs, where


def assert_same_request(mine: dict[str, Any], theirs: dict[str, Any], auth: str) -> None:
    assert (mine["method"], mine["path"], mine["query"], mine["query_has_key"]) == (
        theirs["method"],
        theirs["path"],
        theirs["query"],
        theirs["query_has_key"],
    )
    assert mine["headers"][auth] == theirs["headers"][auth]
    other = {"x-goog-api-key", "authorization"} - {auth}
    assert not other & (set(mine["headers"]) | set(theirs["headers"]))
    assert mine["headers"]["content-type"] == theirs["headers"]["content-type"]
    assert_equivalent(camel(mine["body"]), camel(theirs["body"]))


def assert_same_completion(mine, theirs) -> None:
    assert mine.text == theirs.text
    assert mine.provider_finish_reason == theirs.candidates[0].finish_reason.value
    assert mine.model == theirs.model_version
    assert mine.response_id  # a fresh id per reply: both read one
    assert theirs.response_id
    usage = theirs.usage_metadata
    assert mine.usage is not None
    assert (mine.usage.prompt_tokens, mine.usage.total_tokens) == (
        usage.prompt_token_count,
        usage.total_token_count,
    )
    thoughts = usage.thoughts_token_count or 0
    assert mine.usage.completion_tokens == usage.candidates_token_count + thoughts


ERRORS = [
    (400, errors.ClientError, "INVALID_ARGUMENT", ErrorClass.BAD_REQUEST),
    (403, errors.ClientError, "PERMISSION_DENIED", ErrorClass.PERMISSION),
    (404, errors.ClientError, "NOT_FOUND", ErrorClass.MODEL_NOT_FOUND),
    (429, errors.ClientError, "RESOURCE_EXHAUSTED", ErrorClass.RATE_LIMITED),
    (500, errors.ServerError, "INTERNAL", ErrorClass.SERVER_ERROR),
    (503, errors.ServerError, "UNAVAILABLE", ErrorClass.OVERLOADED),
    (504, errors.ServerError, "DEADLINE_EXCEEDED", ErrorClass.TIMEOUT),
]


# --- the Gemini API ---------------------------------------------------------------------------


@pytest.fixture
def gemini():
    with serving(GeminiSimulator(name="gem", api_key=KEY, models=[MODEL])) as running:
        yield running


def gemini_sdk(server, key=KEY):
    options = types.HttpOptions(base_url=server.url, api_version="v1beta")
    return genai.Client(api_key=key, http_options=options)


def gemini_generate(server, key=KEY, config=None):
    """One generate_content call (the client is held until it returns: a dropped Client closes
    its HTTP client under the call)."""
    client = gemini_sdk(server, key)
    return client.models.generate_content(model=MODEL, contents="Hi there", config=config)


def gemini_ours(server, key=KEY, **env):
    env_settings = settings(GEMINI_API_KEY=key, **env)
    return adapter_for("gemini", MODEL, env_settings, base_url=f"{server.url}/v1beta")


def test_the_gemini_adapter_sends_what_the_sdk_sends(gemini):
    gemini_generate(gemini, config=CONFIG)
    complete(gemini_ours(gemini), REQUEST)
    theirs, mine = recent(gemini)
    assert_same_request(mine, theirs, "x-goog-api-key")
    assert mine["headers"]["x-goog-api-key"] == "(value) [hidden]"


def test_minimum_thinking_is_what_the_sdk_sends_for_the_smallest_budget(gemini):
    # Room to answer after thinking: with less, both get MAX_TOKENS with no answer (Incomplete).
    thinking = CONFIG.model_copy(
        update={
            "thinking_config": types.ThinkingConfig(thinking_budget=128),
            "max_output_tokens": 256,
        }
    )
    theirs_reply = gemini_generate(gemini, config=thinking)
    mine_reply = complete(
        gemini_ours(gemini, GEMINI_FORCE_MINIMUM_THINKING_BUDGET="1"),
        REQUEST.model_copy(update={"max_tokens": 256}),
    )
    theirs, mine = recent(gemini)
    assert mine["body"]["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 128}
    assert_same_request(mine, theirs, "x-goog-api-key")
    assert theirs_reply.usage_metadata.thoughts_token_count
    assert_same_completion(mine_reply, theirs_reply)


@pytest.mark.parametrize("max_tokens", [64, 2])
def test_both_read_a_gemini_completion_the_same_way(gemini, max_tokens):
    config = CONFIG.model_copy(update={"max_output_tokens": max_tokens})
    theirs = gemini_generate(gemini, config=config)
    mine = complete(gemini_ours(gemini), REQUEST.model_copy(update={"max_tokens": max_tokens}))
    assert_same_completion(mine, theirs)
    assert mine.finish_reason == ("stop" if max_tokens == 64 else "length")


@pytest.mark.parametrize(("status", "sdk_error", "rpc_status", "error_class"), ERRORS)
def test_both_read_a_gemini_error_the_same_way(gemini, status, sdk_error, rpc_status, error_class):
    set_faults(gemini, fail_rate=1.0, fail_status=status, retry_after_s=3)
    with pytest.raises(sdk_error) as sdk_caught:
        gemini_generate(gemini)
    assert (sdk_caught.value.code, sdk_caught.value.status) == (status, rpc_status)
    with pytest.raises(ProviderError) as caught:
        complete(gemini_ours(gemini), REQUEST)
    assert caught.value.error_class is error_class


def test_a_wrong_key_is_a_400_to_the_sdk_and_auth_to_us(gemini):
    wrong = "AIza-wrong-0123456789"
    with pytest.raises(errors.ClientError) as sdk_caught:
        gemini_generate(gemini, wrong)
    assert (sdk_caught.value.code, sdk_caught.value.status) == (400, "INVALID_ARGUMENT")
    with pytest.raises(ProviderError) as caught:
        complete(gemini_ours(gemini, wrong), REQUEST)
    assert caught.value.error_class is ErrorClass.AUTH


# --- Vertex AI --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sa_key():
    return ServiceAccountKey.generate()


@pytest.fixture
def vertex(sa_key, monkeypatch):
    monkeypatch.delenv("GOOGLE_CLOUD_QUOTA_PROJECT", raising=False)
    simulator = VertexSimulator(
        name="vtx", models=[MODEL], trusted_keys={sa_key.key_id: sa_key.public_pem}
    )
    with serving(simulator) as running:
        yield running


@pytest.fixture
def key_file(sa_key, vertex, tmp_path):
    return sa_key.write(tmp_path / "sa.json", f"{vertex.url}/token", project=PROJECT)


def vertex_sdk(server, key_file):
    credentials = service_account.Credentials.from_service_account_file(
        str(key_file), scopes=SCOPES
    )
    return genai.Client(
        vertexai=True,
        project=PROJECT,
        location=LOCATION,
        credentials=credentials,
        http_options=types.HttpOptions(base_url=server.url, api_version="v1"),
    )


def vertex_generate(server, key_file, config=None):
    client = vertex_sdk(server, key_file)
    return client.models.generate_content(model=MODEL, contents="Hi there", config=config)


def vertex_ours(server, key_file):
    env = settings(
        GOOGLE_CLOUD_PROJECT=PROJECT,
        GOOGLE_CLOUD_LOCATION=LOCATION,
        GOOGLE_APPLICATION_CREDENTIALS=str(key_file),
        VERTEX_BASE_URL=server.url,
    )
    return adapter_for("vertex", MODEL, env)


def test_the_vertex_adapter_sends_what_the_sdk_sends(vertex, key_file):
    vertex_generate(vertex, key_file, config=CONFIG)
    complete(vertex_ours(vertex, key_file), REQUEST)
    theirs, mine = recent(vertex)
    assert_same_request(mine, theirs, "authorization")
    assert mine["headers"]["authorization"] == "Bearer [hidden]"
    assert mine["auth_ok"]
    assert theirs["auth_ok"]


def test_both_read_a_vertex_completion_the_same_way(vertex, key_file):
    theirs = vertex_generate(vertex, key_file, config=CONFIG)
    assert_same_completion(complete(vertex_ours(vertex, key_file), REQUEST), theirs)


@pytest.mark.parametrize(("status", "sdk_error", "rpc_status", "error_class"), ERRORS)
def test_both_read_a_vertex_error_the_same_way(
    vertex, key_file, status, sdk_error, rpc_status, error_class
):
    set_faults(vertex, fail_rate=1.0, fail_status=status)
    with pytest.raises(sdk_error) as sdk_caught:
        vertex_generate(vertex, key_file)
    assert (sdk_caught.value.code, sdk_caught.value.status) == (status, rpc_status)
    with pytest.raises(ProviderError) as caught:
        complete(vertex_ours(vertex, key_file), REQUEST)
    assert caught.value.error_class is error_class
