"""The simulator speaks OpenAI's wire protocol: the official SDK parses everything it says."""

import json
import urllib.request

import openai
import pytest

from ops.simulator import Faults, OpenAISimulator
from ops.simulator.server import ServerThread

KEY = "sim-test-key-0123456789"


@pytest.fixture
def sim():
    app = OpenAISimulator(name="sim-a", api_key=KEY, models=["sim-model", "sim-large"], seed=1)
    with ServerThread(app) as server:
        yield server


def sdk(server, key=KEY, **kwargs):
    return openai.OpenAI(api_key=key, base_url=f"{server.url}/v1", max_retries=0, **kwargs)


def control(server, path, payload=None):
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(
        f"{server.url}/_sim/{path}", data=data, method="POST" if data else "GET"
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def test_the_official_sdk_parses_a_completion(sim):
    completion = sdk(sim).chat.completions.create(
        model="sim-model",
        messages=[{"role": "system", "content": "be terse"}, {"role": "user", "content": "hi"}],
        max_completion_tokens=200,
    )
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content.startswith("sim-a (sim-model) answers")
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )
    assert completion.usage.prompt_tokens_details.cached_tokens == 0


def test_max_tokens_truncates_with_finish_reason_length(sim):
    completion = sdk(sim).chat.completions.create(
        model="sim-model", messages=[{"role": "user", "content": "hi"}], max_tokens=2
    )
    assert completion.choices[0].finish_reason == "length"


def test_models_list(sim):
    assert [m.id for m in sdk(sim).models.list()] == ["sim-model", "sim-large"]


def test_a_wrong_key_is_an_authentication_error_echoing_it_masked(sim):
    with pytest.raises(openai.AuthenticationError) as caught:
        sdk(sim, key="sk-wrong-key-abcdefghij").chat.completions.create(
            model="sim-model", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.code == "invalid_api_key"
    assert "sk-wrong-key-abcdefghij" not in str(caught.value)
    assert "ghij" in str(caught.value), "OpenAI echoes the last characters"


@pytest.mark.parametrize(
    ("status", "exception"),
    [
        (400, openai.BadRequestError),
        (404, openai.NotFoundError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
def test_injected_failures_are_the_sdks_own_errors(sim, status, exception):
    control(sim, "faults", {"fail_rate": 1.0, "fail_status": status, "retry_after_s": 3})
    with pytest.raises(exception) as caught:
        sdk(sim).chat.completions.create(
            model="sim-model", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.status_code == status
    assert caught.value.response.headers["retry-after"] == "3"
    assert caught.value.response.headers["x-request-id"].startswith("req_")


def test_a_request_openai_would_refuse_is_refused(sim):
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(sim).chat.completions.create(model="sim-model", messages=[])
    assert caught.value.param == "messages"


def test_malformed_bodies_break_the_sdk_too(sim):
    control(sim, "faults", {"malformed": True})
    with pytest.raises(json.JSONDecodeError):
        sdk(sim).chat.completions.create(
            model="sim-model", messages=[{"role": "user", "content": "hi"}]
        )


def test_a_hanging_provider_times_out(sim):
    control(sim, "faults", {"hang": True})
    with pytest.raises(openai.APITimeoutError):
        sdk(sim, timeout=0.5).chat.completions.create(
            model="sim-model", messages=[{"role": "user", "content": "hi"}]
        )


def test_faults_change_at_run_time_and_stats_count_requests(sim):
    client = sdk(sim)
    client.chat.completions.create(model="sim-model", messages=[{"role": "user", "content": "1"}])
    control(sim, "faults", {"fail_rate": 1.0, "fail_status": 503})
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(
            model="sim-model", messages=[{"role": "user", "content": "2"}]
        )
    state = control(sim, "faults", {"fail_rate": 0.0})
    client.chat.completions.create(model="sim-model", messages=[{"role": "user", "content": "3"}])
    state = control(sim, "state")
    assert state["stats"]["chat_requests"] == 3
    assert state["stats"]["statuses"] == {"200": 2, "503": 1}
    recorded_auth = {r["headers"]["authorization"] for r in state["stats"]["recent"]}
    assert recorded_auth == {"Bearer [hidden]"}, "the scheme is kept, the key never"
    assert control(sim, "reset", {})["stats"]["chat_requests"] == 0


def test_bad_fault_settings_are_refused(sim):
    with pytest.raises(urllib.error.HTTPError) as caught:
        control(sim, "faults", {"fail_rate": 2})
    assert caught.value.code == 400
    with pytest.raises(ValueError, match="unknown fault"):
        Faults().updated({"explode": True})


def test_calls_are_counted_per_key_by_fingerprint_never_by_value():
    from ops.simulator.base import key_fingerprint

    app = OpenAISimulator(name="any-key", api_key=None)
    with ServerThread(app) as server:
        for key, times in (("sk-first-0123456789", 2), ("sk-second-0123456789", 1)):
            for _ in range(times):
                sdk(server, key=key).chat.completions.create(
                    model="sim-model", messages=[{"role": "user", "content": "hi"}]
                )
        state = control(server, "state")
    counted = state["stats"]["key_calls"]
    assert {k: v["calls"] for k, v in counted.items()} == {
        key_fingerprint("sk-first-0123456789"): 2,
        key_fingerprint("sk-second-0123456789"): 1,
    }
    assert all(v["first_at"] <= v["last_at"] for v in counted.values())
    assert "sk-first" not in json.dumps(state)
