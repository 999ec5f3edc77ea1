"""Whether a secret an operator chose (a bearer token of ``turnout serve``, Flower's password)
is fit to guard anything: one check, so serve and Flower refuse the same weak values.

The values that matter most are the ones turnout ships: ``.env.example`` is copied to ``.env``
as its first step, so its placeholders become live credentials unless something refuses them.
An attacker tries those first, then the usual words ("secret", "password1"), then short ones.
A refusal names the problem and how to make a good secret, never the secret itself.
"""

from __future__ import annotations

import re

#: Shorter secrets can be guessed; ``secrets.token_urlsafe(32)`` gives 43 characters and
#: ``secrets.token_urlsafe(12)`` (what ``turnout up`` makes for Flower) 16.
MIN_SECRET_CHARS = 16
#: Fewer distinct characters than this is a pattern ("aaaa...", "abab..."), not a secret.
MIN_DISTINCT_CHARS = 8
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
    }
)
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


def secret_weakness(secret: str, *, min_chars: int = MIN_SECRET_CHARS) -> str | None:
    """Why ``secret`` is unfit (a phrase to follow "the token/password ..."), or None when it
    passes. The phrase never quotes the secret."""
    normalised = _NOT_ALNUM.sub("", secret.lower())
    if secret in SHIPPED_PLACEHOLDERS:
        return "is the placeholder shipped in .env.example"
    if any(marker in normalised for marker in _TEMPLATE_MARKERS):
        return "is a placeholder (it says 'change me' or the like)"
    if normalised.rstrip("0123456789") in _COMMON_WORDS or normalised.isdigit():
        return "is a common word or number, the first thing anyone tries"
    if len(secret) < min_chars:
        return f"has {len(secret)} characters, fewer than {min_chars}"
    if len(set(secret)) < MIN_DISTINCT_CHARS:
        return (
            f"has only {len(set(secret))} distinct characters (fewer than "
            f"{MIN_DISTINCT_CHARS}): a pattern, not a random secret"
        )
    return None
