"""Whether a secret an operator chose (a bearer token of ``turnout serve``, Flower's password)
is fit to guard anything: one check, so serve and Flower refuse the same weak values.

The values that matter most are the ones turnout ships: ``.env.example`` is copied to ``.env``
as its first step, so its placeholders become live credentials unless something refuses them.
An attacker tries those first, then the usual words ("secret", "password1"), then short ones.
A refusal names the problem and how to make a good secret, never the secret itself.
"""

from __future__ import annotations

import math
import re

#: Shorter secrets can be guessed; ``secrets.token_urlsafe(32)`` gives 43 characters and
#: ``secrets.token_urlsafe(12)`` (what ``turnout up`` makes for Flower) 16.
MIN_SECRET_CHARS = 16
#: Fewer distinct characters than this is a pattern ("aaaa...", "abcdabcd..."), not a secret
#: (random hex of 16 characters has fewer than 5 distinct ones about once in 10 million).
MIN_DISTINCT_CHARS = 5
#: What a secret must carry, estimated as length x log2(the alphabet its character classes
#: span): ``secrets.token_hex(8)`` carries 64 to 83 (53 in the rare draw of digits only, which
#: this estimate cannot tell from a typed number), 12 digits only 40.
MIN_ESTIMATED_BITS = 52
#: Characters left once common words and keyboard or alphabet runs are taken out: fewer is a
#: phrase ("mysupersecrettoken", "Flower-password-1", "qwertyuiopasdfgh"), not a secret.
MIN_UNGUESSABLE_CHARS = 8
#: How to make one, as every refusal says it.
MAKE_ONE = "make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"

#: Values turnout has shipped in .env.example and its docs, exactly.
SHIPPED_PLACEHOLDERS = frozenset({"change-me-to-a-long-random-token", "change-me"})
#: Markers of a template value, anywhere in a secret once case and punctuation are dropped.
_TEMPLATE_MARKERS = ("changeme", "replaceme", "placeholder", "yourtoken", "yourpassword")
#: Secrets that are a word people reach for, perhaps with digits after it ("password123").
_COMMON_WORDS = frozenset(
    {
        "admin",
        "administrator",
        "default",
        "example",
        "letmein",
        "password",
        "passw0rd",
        "qwerty",
        "secret",
        "test",
        "token",
        "turnout",
        "flower",
        "apitoken",
        "secrettoken",
        "supersecret",
        "topsecret",
        "mysecret",
        "mypassword",
        "super",
        "my",
        "key",
        "pass",
        "welcome",
        "master",
        "root",
        "guest",
        "login",
        "hello",
    }
)
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")
#: Sequences whose runs of 4 or more people type instead of a secret (and their reverses).
_RUNS_OF = ("abcdefghijklmnopqrstuvwxyz", "0123456789", "qwertyuiop", "asdfghjkl", "zxcvbnm")
_RUN = 4


def secret_weakness(secret: str, *, min_chars: int = MIN_SECRET_CHARS) -> str | None:
    """Why ``secret`` is unfit (a phrase to follow "the token/password ..."), or None when it
    passes. The phrase never quotes the secret."""
    normalised = _NOT_ALNUM.sub("", secret.lower())
    if secret in SHIPPED_PLACEHOLDERS:
        return "is the placeholder shipped in .env.example"
    if any(marker in normalised for marker in _TEMPLATE_MARKERS):
        return "is a placeholder (it says 'change me' or the like)"
    if normalised.rstrip("0123456789") in _COMMON_WORDS:
        return "is a common word or number, the first thing anyone tries"
    if len(secret) < min_chars:
        return f"has {len(secret)} characters, fewer than {min_chars}"
    if len(set(secret)) < MIN_DISTINCT_CHARS:
        return (
            f"has only {len(set(secret))} distinct characters (fewer than "
            f"{MIN_DISTINCT_CHARS}): a pattern, not a random secret"
        )
    if estimated_bits(secret) < MIN_ESTIMATED_BITS:
        return (
            f"carries about {estimated_bits(secret):.0f} bits, fewer than {MIN_ESTIMATED_BITS}: "
            "make it longer or use more kinds of characters"
        )
    if _unguessable_chars(normalised) < MIN_UNGUESSABLE_CHARS:
        return "is made of common words and keyboard or alphabet runs, which are guessed first"
    return None


def estimated_bits(secret: str) -> float:
    """An upper estimate of a secret's entropy: its length times log2 of the alphabet that its
    character classes span (lower case 26, upper case 26, digits 10, anything else 33)."""
    alphabet = (
        26 * any(c.islower() for c in secret)
        + 26 * any(c.isupper() for c in secret)
        + 10 * any(c.isdigit() for c in secret)
        + 33 * any(not c.isalnum() for c in secret)
    )
    return len(secret) * math.log2(max(alphabet, 2))


def _unguessable_chars(normalised: str) -> int:
    """How many characters of ``normalised`` no common word or 4-character run covers."""
    covered = [False] * len(normalised)
    for word in _COMMON_WORDS:
        start = normalised.find(word)
        while start >= 0:
            covered[start : start + len(word)] = [True] * len(word)
            start = normalised.find(word, start + 1)
    for sequence in (*_RUNS_OF, *(run[::-1] for run in _RUNS_OF)):
        for start in range(len(normalised) - _RUN + 1):
            if normalised[start : start + _RUN] in sequence:
                end = start + _RUN
                while end < len(normalised) and normalised[start : end + 1] in sequence:
                    end += 1
                covered[start:end] = [True] * (end - start)
    return covered.count(False)
