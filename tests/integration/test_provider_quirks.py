"""Issue 11's cases 5-10 through a real worker process and the simulators: each quirky reply of
today's services fails over (or succeeds) with its own class, and the route's breaker stays
closed where the route is healthy (tests.integration.quirks_scenario has the stack)."""

from __future__ import annotations

import json

import pytest

from tests.integration.conftest import run_cli
from tests.integration.quirks_scenario import LONG_PROMPT, quirks_stack, run_case


@pytest.fixture(scope="module")
def quirks(redis_url, tmp_path_factory):
    with quirks_stack(redis_url, tmp_path_factory.mktemp("quirks")) as running:
        yield running


def observe(quirks, case):
    client, _, namespace = quirks
    return run_case(client, namespace, case)


def test_groqs_413_tpm_is_a_rate_limit_that_fails_over_at_once_and_cools_the_route(quirks):
    seen = observe(quirks, "5 groq 413 TPM")
    assert (seen.state, seen.deployment) == ("succeeded", "fallback")
    assert seen.calls == ["groq:rate_limited", "fallback:ok"], "no retry into the same 413"
    assert "tokens per minute (TPM)" in (seen.message or "")
    assert seen.breaker == "closed"
    assert 0 < seen.cooling_s <= 7.7, "cooled by x-ratelimit-reset-tokens (7.66s)"


def test_groqs_413_tpm_does_not_pass_over_targets_with_a_smaller_window(quirks):
    seen = observe(quirks, "5b groq 413 TPM, smaller fallback")
    assert (seen.state, seen.deployment) == ("succeeded", "fallback-128k")
    assert seen.calls == ["groq-b:rate_limited", "fallback-128k:ok"]


@pytest.mark.parametrize("case", ["6a bedrock claude overflow", "6b bedrock text bytes"])
def test_bedrocks_overflow_wordings_move_the_job_to_a_larger_context(quirks, case):
    seen = observe(quirks, case)
    assert (seen.state, seen.deployment) == ("succeeded", "fallback")
    first = "bedrock-claude" if "claude" in case else "bedrock-nova"
    assert seen.calls == [f"{first}:context_length", "fallback:ok"]
    assert (seen.breaker, seen.breaker_reason) == ("closed", "")


def test_magistral_chunks_are_joined_without_the_thinking(quirks):
    seen = observe(quirks, "7 magistral chunks")
    assert (seen.state, seen.deployment, seen.calls) == ("succeeded", "mistral", ["mistral:ok"])
    assert seen.text is not None
    assert seen.text.startswith("mistral (magistral-medium-2509)")
    assert "answer briefly" not in seen.text, "the thinking chunk is not the answer"
    assert seen.breaker == "closed"


def test_ollama_says_truncate_false_so_an_over_long_prompt_fails_over_instead_of_being_cut(
    quirks,
):
    seen = observe(quirks, "8a ollama over num_ctx")
    assert (seen.state, seen.deployment) == ("succeeded", "fallback")
    assert seen.calls == ["ollama-small:context_length", "fallback:ok"]
    assert "exceeds the available context size (4096 tokens)" in (seen.message or "")
    assert (seen.breaker, seen.breaker_reason) == ("closed", "")


def test_ollama_is_sent_the_deployments_window_as_num_ctx_and_reads_the_whole_prompt(quirks):
    seen = observe(quirks, "8b ollama num_ctx from window")
    assert (seen.state, seen.deployment, seen.calls) == (
        "succeeded",
        "ollama-large",
        ["ollama-large:ok"],
    )
    assert seen.prompt_tokens == len(LONG_PROMPT) // 4, "the model saw all of it"


@pytest.mark.parametrize(
    ("case", "first"),
    [("9a o3 spends the budget", "openai-o3"), ("9b gemini thoughts only", "gemini-pro")],
)
def test_a_reply_with_no_answer_after_thinking_is_incomplete_and_fails_over(quirks, case, first):
    seen = observe(quirks, case)
    assert (seen.state, seen.deployment) == ("succeeded", "fallback")
    assert seen.calls == [f"{first}:incomplete", "fallback:ok"], "no retry of the same budget"
    assert "raise max_tokens" in (seen.message or "")
    assert seen.text, "the job's text is an answer, never the empty one"
    assert (seen.breaker, seen.breaker_reason) == ("closed", "")


def test_a_wrong_base_path_opens_the_route_with_its_url_not_credential_rejected(quirks):
    seen = observe(quirks, "10a wrong base path")
    assert (seen.state, seen.deployment) == ("succeeded", "fallback")
    assert seen.calls == ["wrong-path:configuration", "fallback:ok"]
    assert seen.breaker == "open"
    assert seen.breaker_reason.startswith("misconfigured: 404 at http://127.0.0.1:")
    assert "/openai/deployments/v1/chat/completions" in seen.breaker_reason
    assert "credential" not in seen.breaker_reason
    assert "sim-" not in seen.breaker_reason, "never a key"
    worker = quirks[1]
    shown = run_cli(["status", "--json"], worker.env)
    assert shown.returncode == 0, shown.stderr
    (route,) = [r for r in json.loads(shown.stdout)["deployments"] if r["id"] == "wrong-path"]
    assert (route["state"], route["reason"]) == ("open", seen.breaker_reason)
    table = run_cli(["status"], {**worker.env, "COLUMNS": "400"})
    assert "open (misconfigured: 404 at http://127.0.0.1:" in table.stdout


def test_a_refused_connection_names_the_host_and_port_it_tried(quirks):
    seen = observe(quirks, "10b refused connection")
    assert (seen.state, seen.deployment) == ("succeeded", "fallback")
    assert seen.calls[0] == "refused:connection"
    assert "connection refused at 127.0.0.1:" in (seen.message or "")


def test_googles_html_404_for_a_wrong_prefix_is_a_configuration_error(quirks):
    seen = observe(quirks, "10c gemini behind a wrong prefix")
    assert (seen.state, seen.deployment) == ("succeeded", "fallback")
    assert seen.calls == ["gemini-wrong:configuration", "fallback:ok"]
    assert seen.breaker == "open"
    assert "/google/v1beta/models/gemini-2.5-flash:generateContent" in seen.breaker_reason
