"""Fitting a request to a target's model: drop, skip, fail, and prefill never dropped."""

import pytest

from routing.config import DeploymentConfig
from routing.models import CompletionRequest, Message
from routing.request_fit import LocalLessons, fit_request

O3 = DeploymentConfig(id="o3", provider="openai", model="o3")
GPT4O = DeploymentConfig(id="4o", provider="openai", model="gpt-4o")
SONNET_46 = DeploymentConfig(id="s46", provider="anthropic", model="claude-sonnet-4-6")
SAMPLED = CompletionRequest(
    messages=[Message(role="user", content="hi")], temperature=0.2, top_p=0.9, stop=["END"]
)
PREFILLED = CompletionRequest(
    messages=[Message(role="user", content="hi"), Message(role="assistant", content="{")]
)


def test_drop_leaves_out_what_the_model_refuses_and_says_so():
    fit = fit_request(SAMPLED, O3, mode="drop", learnt={})
    assert (fit.request.temperature, fit.request.top_p, fit.request.stop) == (None, None, None)
    assert fit.refused is None
    assert fit.note == (
        "dropped temperature: not accepted by o3; dropped top_p: not accepted by o3; "
        "dropped stop: not accepted by o3"
    )


def test_a_model_that_accepts_everything_gets_the_request_unchanged():
    fit = fit_request(SAMPLED, GPT4O, mode="drop", learnt={})
    assert fit.request is SAMPLED
    assert fit.note is None


@pytest.mark.parametrize(("mode", "fails_job"), [("skip", False), ("fail", True)])
def test_skip_and_fail_rule_the_target_out(mode, fails_job):
    fit = fit_request(SAMPLED, O3, mode=mode, learnt={})
    assert fit.refused == "temperature"
    assert fit.fails_job is fails_job
    assert f"unsupported_parameters: {mode}" in fit.detail


def test_a_learnt_refusal_is_dropped_with_its_reason():
    lessons = LocalLessons()
    lessons.learn(GPT4O, "stop", "400 from openai: Unsupported parameter: 'stop'")
    fit = fit_request(SAMPLED, GPT4O, mode="drop", learnt=lessons.refused(GPT4O))
    assert fit.request.stop is None
    assert fit.request.temperature == 0.2
    assert (
        fit.note
        == "dropped stop: refused by gpt-4o (400 from openai: Unsupported parameter: 'stop')"
    )


def test_lessons_are_per_model_not_per_deployment():
    lessons = LocalLessons()
    lessons.learn(GPT4O, "stop", "no")
    twin = DeploymentConfig(id="other-key", provider="openai", model="gpt-4o")
    assert lessons.refused(twin) == {"stop": "no"}
    assert lessons.refused(O3) == {}


@pytest.mark.parametrize("mode", ["drop", "skip"])
def test_prefill_is_never_dropped_the_target_is_passed_over(mode):
    fit = fit_request(PREFILLED, SONNET_46, mode=mode, learnt={})
    assert fit.refused == "assistant_prefill"
    assert fit.request is PREFILLED
    assert not fit.fails_job
    assert "prefill" in fit.detail


def test_prefill_goes_to_a_model_that_accepts_it():
    older = DeploymentConfig(id="s45", provider="anthropic", model="claude-sonnet-4-5")
    assert fit_request(PREFILLED, older, mode="drop", learnt={}).refused is None
