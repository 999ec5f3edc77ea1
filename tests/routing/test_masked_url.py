"""What turnout prints of a URL: never its password."""

from __future__ import annotations

import pytest

from routing.masked_url import masked_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:hunter2-long@redis:6379/0", "redis://:****@redis:6379/0"),
        (
            "rediss://default:p%40ss:w@cache.example:6380/1",
            "rediss://default:****@cache.example:6380/1",
        ),
        (
            "redis://127.0.0.1:6379/0?password=hunter2&db=1",
            "redis://127.0.0.1:6379/0?password=****&db=1",
        ),
    ],
)
def test_passwords_are_masked(url, shown):
    assert masked_url(url) == shown


@pytest.mark.parametrize(
    "value",
    [
        "redis://127.0.0.1:6379/0",
        "redis://user@host:6379/0",
        "/tmp/turnout.yaml",
        "turnout-1a2b",
        "redis://[bad",
    ],
)
def test_values_without_a_password_are_unchanged(value):
    assert masked_url(value) == value
