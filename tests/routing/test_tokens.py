import importlib.util

import pytest

from routing.models import Message
from routing.prices import ModelInfo, model_info
from routing.tokens import (
    TOKENS_PER_MESSAGE,
    TOKENS_PER_REPLY,
    estimate_cost_usd,
    estimate_prompt_tokens,
)


def _user(content):
    return Message(role="user", content=content)


@pytest.fixture
def without_tiktoken():
    """The character fallback is what runs here: tiktoken is not installed in this venv."""
    assert importlib.util.find_spec("tiktoken") is None, "these expectations assume no tiktoken"


def test_known_example_with_the_character_fallback(without_tiktoken):
    messages = [
        Message(role="system", content="You are terse."),  # 14 chars -> 4 tokens
        _user("Hello!"),  # 6 chars -> 2 tokens
    ]
    assert estimate_prompt_tokens(messages) == (4 + 4) + (2 + 4) + 3
    assert estimate_prompt_tokens(messages, model="gpt-4o-mini") == 17


def test_characters_round_up_per_message(without_tiktoken):
    assert estimate_prompt_tokens([_user("a")]) == 1 + TOKENS_PER_MESSAGE + TOKENS_PER_REPLY
    assert estimate_prompt_tokens([_user("abcd")]) == 1 + TOKENS_PER_MESSAGE + TOKENS_PER_REPLY
    assert estimate_prompt_tokens([_user("abcde")]) == 2 + TOKENS_PER_MESSAGE + TOKENS_PER_REPLY


@pytest.mark.parametrize("model", [None, "gpt-4o", "claude-sonnet-4-5", "openai/gpt-5-mini"])
def test_monotonic_in_text_length(model):
    text = "The quick brown fox jumps over the lazy dog. " * 50
    counts = [estimate_prompt_tokens([_user(text[:n])], model=model) for n in range(1, len(text))]
    assert counts == sorted(counts)
    assert counts[-1] > counts[0]


@pytest.mark.parametrize("model", [None, "gpt-4o-mini", "llama-3.1-8b-instant"])
def test_each_message_adds_its_overhead(model):
    one = [_user("Same words in every message.")]
    three = one * 3
    single = estimate_prompt_tokens(one, model=model)
    assert estimate_prompt_tokens(three, model=model) == 3 * single - 2 * TOKENS_PER_REPLY
    assert estimate_prompt_tokens([], model=model) == TOKENS_PER_REPLY


def test_cost_at_list_prices():
    info = ModelInfo(input_cost_per_mtok=0.15, output_cost_per_mtok=0.6, context_window=128_000)
    assert estimate_cost_usd(info, 1_000_000, 0) == pytest.approx(0.15)
    assert estimate_cost_usd(info, 2_000, 500) == pytest.approx(0.0003 + 0.0003)
    assert estimate_cost_usd(info, 0, 0) == 0.0
    assert estimate_cost_usd(model_info("openai", "gpt-4o"), 1000, 1000) == pytest.approx(0.0125)


def test_cost_is_unknown_rather_than_free():
    assert estimate_cost_usd(None, 100, 100) is None
    assert estimate_cost_usd(ModelInfo(None, 1.0, 8192), 100, 100) is None
    assert estimate_cost_usd(ModelInfo(1.0, None, 8192), 100, 0) is None


def test_negative_token_counts_are_refused():
    with pytest.raises(ValueError, match="negative"):
        estimate_cost_usd(ModelInfo(1.0, 1.0, 8192), -1, 0)
