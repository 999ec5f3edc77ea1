"""The one check of an operator's secret (serve's tokens, Flower's password): what it refuses,
and that it never quotes the secret it refuses."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from dotenv import dotenv_values

from routing.secret_strength import MIN_SECRET_CHARS, secret_weakness

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = dotenv_values(ROOT / ".env.example")


def test_the_values_env_example_ships_are_refused():
    token = EXAMPLE["TURNOUT_API_TOKENS"]
    assert token, ".env.example shows where the token goes"
    assert secret_weakness(token) is not None
    flower = EXAMPLE["FLOWER_BASIC_AUTH"]
    assert flower, ".env.example shows where Flower's credentials go"
    _, _, password = flower.partition(":")
    assert secret_weakness(password) is not None


@pytest.mark.parametrize(
    "secret",
    [
        "change-me-to-a-long-random-token",
        "change-me",
        "CHANGEME-please-0123456789",
        "replace_me_with_a_real_token_xyz",
        "your-token-goes-here-1234567",
        "secret",
        "password",
        "Password123456789012",
        "supersecret",
        "1234567890123456789",
        "admin",
    ],
)
def test_placeholders_and_common_words_are_refused(secret):
    weakness = secret_weakness(secret)
    assert weakness is not None
    assert secret not in weakness, "a refusal never quotes the secret"


def test_short_and_patterned_secrets_are_refused():
    assert secret_weakness("x7Qp2") == f"has 5 characters, fewer than {MIN_SECRET_CHARS}"
    assert "distinct characters" in (secret_weakness("a" * 40) or "")
    assert "distinct characters" in (secret_weakness("abab" * 10) or "")
    assert "fewer than 32" in (secret_weakness(secrets.token_urlsafe(12), min_chars=32) or "")


def test_random_secrets_pass():
    for _ in range(200):
        assert secret_weakness(secrets.token_urlsafe(32)) is None
        assert secret_weakness(secrets.token_urlsafe(12)) is None, "what turnout up makes"
        assert secret_weakness(secrets.token_hex(16)) is None


def test_phrases_of_words_and_keyboard_runs_are_refused_however_long():
    for phrase in (
        "mysupersecrettoken",
        "Flower-password-1",
        "abcdefghijklmnop",
        "qwertyuiopasdfgh",
        "0987654321zyxwvu",
    ):
        weakness = secret_weakness(phrase)
        assert weakness is not None, phrase
        assert "common words" in weakness or "bits" in weakness


def test_few_bits_are_refused_whatever_the_length_rule_says():
    assert "bits" in (secret_weakness("82057193648102", min_chars=8) or ""), "14 digits: 46 bits"
    assert secret_weakness("".join(secrets.choice("0123456789") for _ in range(24))) is None


def test_short_random_hex_passes_nearly_always():
    """16 random hex characters are 64 bits: the review found the old distinct-characters rule
    refused 1.2% of them."""
    refused = sum(secret_weakness(secrets.token_hex(8)) is not None for _ in range(5000))
    assert refused <= 5
