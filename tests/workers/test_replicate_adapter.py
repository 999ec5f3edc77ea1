"""The Replicate adapter and the exchange loop without a server: problem-details errors, how a
prediction is read, and the poll loop's deadline and cancel with a scripted transport (the
loop is what is under test; tests/providers/test_replicate_wire.py runs it over HTTP)."""

import json

import pytest

from routing.config import DeploymentConfig
from routing.errors import ErrorClass, ProviderError, ProviderTimeout
from routing.models import CompletionRequest
from workers.exchange import exchange
from workers.http import HttpCall, HttpReply
from workers.providers.replicate import ReplicateAdapter, classify_replicate_error

REQUEST = CompletionRequest.model_validate({"messages": [{"role": "user", "content": "hi"}]})
BASE = "https://api.replicate.example"


def adapter():
    deployment = DeploymentConfig(id="r", provider="replicate", model="meta/llama")
    return ReplicateAdapter(deployment, base_url=BASE, api_key=None, poll_interval_s=1.0)


def reply(status, payload, headers=None):
    return HttpReply(status, headers or {}, json.dumps(payload).encode(), 0.01)


def prediction(status, **fields):
    return {"id": "p1", "model": "meta/llama", "version": "v", "status": status, **fields}


@pytest.mark.parametrize(
    ("status", "body", "error_class"),
    [
        (401, {"title": "Unauthenticated", "detail": "bad token", "status": 401}, "auth"),
        (402, {"title": "Insufficient credit", "detail": "buy", "status": 402}, "permission"),
        (404, {"title": "Not found", "detail": "nothing", "status": 404}, "model_not_found"),
        (422, {"title": "Invalid version or not permitted", "status": 422}, "model_not_found"),
        (422, {"title": "Input validation failed", "detail": "- input: x"}, "bad_request"),
        (429, {"detail": "Request was throttled.", "status": 429}, "rate_limited"),
        (500, {"title": "Internal server error"}, "server_error"),
        (503, {"title": "Service unavailable"}, "overloaded"),
        (504, {"title": "Gateway timeout"}, "timeout"),
    ],
)
def test_problem_details_have_their_class(status, body, error_class):
    error = classify_replicate_error(status, json.dumps(body).encode(), {})
    assert error.error_class == error_class
    assert error.message.startswith(f"{status} from replicate: ")


def test_a_throttle_without_a_header_takes_the_bodys_retry_after():
    body = json.dumps({"detail": "Request was throttled.", "status": 429, "retry_after": 5})
    assert classify_replicate_error(429, body.encode(), {}).retry_after_s == 5
    with_header = classify_replicate_error(429, body.encode(), {"retry-after": "3"})
    assert with_header.retry_after_s == 3


def test_a_succeeded_prediction_joins_its_tokens_and_reads_its_metrics():
    done = prediction(
        "succeeded",
        output=["Hello", ",", " world"],
        input={"prompt": "hi", "max_tokens": 3},
        metrics={"input_token_count": 2, "output_token_count": 3},
    )
    result = adapter().parse_reply(reply(201, done))
    assert result.text == "Hello, world"
    assert result.usage is not None
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (2, 3)
    assert result.finish_reason == "length", "it used every token it was allowed"
    assert adapter().pending(reply(201, done)) is None


@pytest.mark.parametrize(
    ("error", "error_class"),
    [
        ("CUDA out of memory", "server_error"),
        ("Prompt is too long for the model", "context_length"),
    ],
)
def test_a_failed_prediction_is_the_models_error(error, error_class):
    with pytest.raises(ProviderError) as caught:
        adapter().parse_reply(reply(200, prediction("failed", error=error)))
    assert caught.value.error_class == error_class


def test_output_that_is_not_text_is_an_invalid_response():
    with pytest.raises(ProviderError) as caught:
        adapter().parse_reply(reply(200, prediction("succeeded", output=[{"url": "x"}])))
    assert caught.value.error_class is ErrorClass.INVALID_RESPONSE


class Script:
    """A transport that answers from a list and records what it was sent (a pure unit of the
    loop: no network, the time is the test's)."""

    def __init__(self, clock, replies, *, fail_on=None):
        self.clock = clock
        self.replies = list(replies)
        self.sent: list[tuple[HttpCall, float]] = []
        self.fail_on = fail_on

    def send(self, call, *, timeout_s):
        self.sent.append((call, timeout_s))
        self.clock.now += 0.1
        if self.fail_on and self.fail_on(call):
            raise ProviderTimeout("read timed out")
        return self.replies.pop(0)

    def close(self):
        pass


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_the_loop_polls_until_final_and_keeps_within_the_attempt():
    clock = Clock()
    running = reply(201, prediction("processing"))
    done = reply(200, prediction("succeeded", output=["ok"]))
    script = Script(clock, [running, reply(200, prediction("processing")), done])
    final = exchange(script, adapter(), REQUEST, 10.0, clock=clock, sleep=clock.sleep)
    assert final is done
    start, *polls = [call for call, _ in script.sent]
    assert dict(start.headers)["prefer"] == "wait=7"
    assert [p.url for p in polls] == [f"{BASE}/v1/predictions/p1"] * 2
    assert all(timeout <= 10.0 - 2.0 for _, timeout in script.sent)


def test_the_loop_cancels_what_it_gives_up_on_before_the_time_is_up():
    clock = Clock()
    running = [reply(200, prediction("processing")) for _ in range(20)]
    script = Script(clock, running)
    with pytest.raises(ProviderTimeout) as caught:
        exchange(script, adapter(), REQUEST, 5.0, clock=clock, sleep=clock.sleep)
    last, _ = script.sent[-1]
    assert (last.method, last.url) == ("POST", f"{BASE}/v1/predictions/p1/cancel")
    assert "canceled" in caught.value.message
    assert clock.now <= 5.0


def test_a_poll_that_fails_cancels_the_prediction_and_fails_the_attempt():
    clock = Clock()
    script = Script(
        clock,
        [reply(201, prediction("starting")), reply(200, prediction("canceled"))],
        fail_on=lambda call: call.method == "GET",
    )
    with pytest.raises(ProviderTimeout):
        exchange(script, adapter(), REQUEST, 10.0, clock=clock, sleep=clock.sleep)
    assert [call.method for call, _ in script.sent] == ["POST", "GET", "POST"]
    assert script.sent[-1][0].url.endswith("/cancel")


def test_an_attempt_too_short_for_a_whole_second_of_wait_asks_for_none():
    clock = Clock()
    script = Script(clock, [reply(201, prediction("succeeded", output=["ok"]))])
    exchange(script, adapter(), REQUEST, 1.2, clock=clock, sleep=clock.sleep)
    ((start, timeout),) = script.sent
    assert "prefer" not in dict(start.headers)
    assert timeout < 1.2
