"""The Replicate adapter against the Replicate simulator over HTTP: the prediction it creates,
the wait, the polls (workers.exchange) within the attempt's time, the cancel of a prediction
given up on, and Replicate's problem-details errors."""

import json
import time

import pytest

from ops.simulator.replicate_sim import ReplicateSimulator
from routing.errors import ErrorClass, ProviderError
from routing.models import CompletionRequest
from tests.providers.harness import (
    TRANSPORT,
    adapter_for,
    complete,
    probe,
    recent,
    serving,
    set_faults,
    settings,
)
from workers.exchange import exchange
from workers.http import HttpReply
from workers.providers.replicate import prediction_input

KEY = "r8_wireTest0123456789abcdefghijklmnop"
MODEL = "meta/meta-llama-3-8b-instruct"
REQUEST = CompletionRequest.model_validate(
    {
        "messages": [{"role": "system", "content": "be terse"}, {"role": "user", "content": "hi"}],
        "max_tokens": 50,
        "temperature": 0.5,
        "top_p": 0.9,
        "stop": ["END", "STOP"],
    }
)


def adapter(server, key=KEY, model=MODEL, poll="0.05"):
    env = settings(REPLICATE_API_TOKEN=key, REPLICATE_POLL_INTERVAL=poll)
    return adapter_for("replicate", model, env, base_url=server.url)


def run(made, request=REQUEST, timeout_s=10.0):
    """The exchange a worker runs (start, polls, cancel), then the reply read."""
    return made.parse_reply(exchange(TRANSPORT, made, request, timeout_s))


@pytest.fixture
def simulator():
    return ReplicateSimulator(name="rep", api_key=KEY, models=[MODEL])


@pytest.fixture
def server(simulator):
    with serving(simulator) as running:
        yield running


def test_the_prediction_on_the_wire_and_the_joined_output(server):
    result = run(adapter(server), timeout_s=10.0)
    (sent,) = recent(server)
    assert (sent["method"], sent["path"]) == ("POST", f"/v1/models/{MODEL}/predictions")
    assert sent["headers"]["authorization"] == "Bearer [hidden]"
    assert sent["headers"]["prefer"] == "wait=7"  # 10 s, less the cancel's 2 s and a margin
    assert sent["body"] == {
        "input": {
            "prompt": "hi",
            "system_prompt": "be terse",
            "max_tokens": 50,
            "temperature": 0.5,
            "top_p": 0.9,
            "stop_sequences": "END,STOP",
        }
    }
    assert result.text.startswith(f"rep ({MODEL}) answers")
    assert result.usage is not None
    assert result.usage.completion_tokens > 0
    assert (result.finish_reason, result.provider_finish_reason) == ("stop", "succeeded")


def test_a_long_attempt_asks_the_whole_minute(server):
    call = adapter(server).build_start(REQUEST, wait_s=300)
    assert dict(call.headers)["prefer"] == "wait"


def test_a_version_pinned_model_posts_to_predictions(simulator, server):
    version = simulator.versions[MODEL]
    run(adapter(server, model=f"{MODEL}:{version}"))
    (sent,) = recent(server)
    assert sent["path"] == "/v1/predictions"
    assert sent["body"]["version"] == version


def test_a_conversation_becomes_a_transcript_prompt():
    request = CompletionRequest.model_validate(
        {
            "messages": [
                {"role": "user", "content": "one"},
                {"role": "assistant", "content": "two"},
                {"role": "user", "content": "three"},
            ]
        }
    )
    assert prediction_input(request) == {
        "prompt": "User: one\n\nAssistant: two\n\nUser: three\n\nAssistant:"
    }


def test_an_output_cut_at_max_tokens_is_length(server):
    short = CompletionRequest.model_validate(
        {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
    )
    assert run(adapter(server), short).finish_reason == "length"


def test_a_prediction_still_running_is_polled_until_it_succeeds():
    simulator = ReplicateSimulator(name="rep", api_key=KEY, run_s=0.8, max_wait_s=0.1)
    with serving(simulator) as server:
        result = run(adapter(server), timeout_s=10.0)
    assert result.text.startswith("rep (")
    assert simulator.polls >= 2
    assert simulator.canceled == []


def test_a_prediction_past_the_attempts_time_is_canceled():
    simulator = ReplicateSimulator(name="rep", api_key=KEY, run_s=60, max_wait_s=0.1)
    with serving(simulator) as server:
        started = time.monotonic()
        with pytest.raises(ProviderError) as caught:
            run(adapter(server), timeout_s=1.5)
        took = time.monotonic() - started
    assert caught.value.error_class is ErrorClass.TIMEOUT
    assert "canceled" in caught.value.message
    assert simulator.canceled == list(simulator.predictions)
    (prediction,) = simulator.predictions.values()
    assert prediction.canceled_at is not None
    assert took < 1.5 + 0.5  # the cancel fits in the attempt's time (plus scheduling)


def test_a_failed_prediction_carries_the_models_error():
    simulator = ReplicateSimulator(name="rep", api_key=KEY, model_error="CUDA out of memory")
    with serving(simulator) as server, pytest.raises(ProviderError) as caught:
        run(adapter(server))
    assert caught.value.error_class is ErrorClass.SERVER_ERROR
    assert "CUDA out of memory" in caught.value.message


def test_poll_urls_on_another_host_never_get_the_token(server):
    made = adapter(server)
    foreign = {
        "id": "p1",
        "status": "processing",
        "urls": {"get": "https://elsewhere.example/v1/predictions/p1", "cancel": "x"},
    }
    pending = made.pending(HttpReply(201, {}, json.dumps(foreign).encode(), 0.0))
    assert pending is not None
    assert pending.poll.url == f"{server.url}/v1/predictions/p1"
    assert pending.cancel.url == f"{server.url}/v1/predictions/p1/cancel"


def test_unknown_models_and_versions_are_model_not_found(server):
    for model in ("meta/not-a-model", f"{MODEL}:{'0' * 64}"):
        with pytest.raises(ProviderError) as caught:
            run(adapter(server, model=model))
        assert caught.value.error_class is ErrorClass.MODEL_NOT_FOUND


def test_throttling_says_when_to_come_back(server):
    set_faults(server, fail_rate=1.0, fail_status=429, retry_after_s=5)
    with pytest.raises(ProviderError) as caught:
        complete(adapter(server), REQUEST)
    assert caught.value.error_class is ErrorClass.RATE_LIMITED
    assert caught.value.retry_after_s == 5
    assert "Request was throttled" in caught.value.message


def test_the_probe_reads_the_account(server):
    probe(adapter(server))
    for act in (lambda a: complete(a, REQUEST), probe):
        with pytest.raises(ProviderError) as caught:
            act(adapter(server, key="r8_wrong0123456789abcdef"))
        assert caught.value.error_class is ErrorClass.AUTH
        assert "valid authentication token" in caught.value.message
