"""Conformance with the replicate SDK (``replicate.Client``): pointed at the simulator, the
SDK's ``run`` and our exchange create the same prediction, poll the same URL while it runs, and
read the same output; the SDK's errors and ours agree on what went wrong."""

import pytest
from replicate.client import Client
from replicate.exceptions import ReplicateError

from ops.simulator.replicate_sim import ReplicateSimulator
from routing.errors import ErrorClass, ProviderError
from routing.models import CompletionRequest
from tests.providers.harness import TRANSPORT, adapter_for, recent, serving, settings
from workers.exchange import exchange

KEY = "r8_conformance0123456789abcdefghijkl"
MODEL = "meta/meta-llama-3-8b-instruct"
INPUT = {"prompt": "Hi there", "system_prompt": "be terse", "max_tokens": 64, "temperature": 0.2}
REQUEST = CompletionRequest.model_validate(
    {
        "messages": [
            {"role": "system", "content": "be terse"},
            {"role": "user", "content": "Hi there"},
        ],
        "max_tokens": 64,
        "temperature": 0.2,
    }
)


def sdk(server, key=KEY):
    client = Client(api_token=key, base_url=server.url)
    client.poll_interval = 0.05
    return client


def ours(server, key=KEY):
    env = settings(REPLICATE_API_TOKEN=key, REPLICATE_POLL_INTERVAL="0.05")
    return adapter_for("replicate", MODEL, env, base_url=server.url)


def run_ours(server, key=KEY, timeout_s=70.0):
    adapter = ours(server, key)
    return adapter.parse_reply(exchange(TRANSPORT, adapter, REQUEST, timeout_s))


def test_the_prediction_and_its_output_are_the_sdks():
    with serving(ReplicateSimulator(name="rep", api_key=KEY)) as server:
        output = sdk(server).run(MODEL, input=INPUT)
        result = run_ours(server)
        theirs, mine = recent(server)
    assert (mine["method"], mine["path"]) == (theirs["method"], theirs["path"])
    assert mine["headers"]["authorization"] == theirs["headers"]["authorization"]
    assert mine["headers"]["prefer"] == theirs["headers"]["prefer"] == "wait"
    assert mine["body"] == theirs["body"]
    assert isinstance(output, list)
    assert result.text == "".join(output)


def test_a_running_prediction_is_polled_where_the_sdk_polls():
    simulator = ReplicateSimulator(name="rep", api_key=KEY, run_s=0.6, max_wait_s=0.1)
    with serving(simulator) as server:
        output = sdk(server).run(MODEL, input=INPUT)
        sdk_polls = simulator.polls
        result = run_ours(server)
    assert sdk_polls >= 1
    assert simulator.polls > sdk_polls
    assert result.text == "".join(output)


def test_errors_agree_with_the_sdks():
    with serving(ReplicateSimulator(name="rep", api_key=KEY)) as server:
        with pytest.raises(ReplicateError) as theirs:
            sdk(server, key="r8_wrong0123456789abcdef").run(MODEL, input=INPUT)
        with pytest.raises(ProviderError) as mine:
            run_ours(server, key="r8_wrong0123456789abcdef")
        with pytest.raises(ReplicateError) as theirs_missing:
            sdk(server).run("meta/not-a-model", input=INPUT)
    assert theirs.value.status == mine.value.status_code == 401
    assert mine.value.error_class is ErrorClass.AUTH
    assert theirs.value.detail is not None
    assert theirs.value.detail in mine.value.message
    assert theirs_missing.value.status == 404
