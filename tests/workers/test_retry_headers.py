import email.utils

import pytest

from workers.providers.retry_headers import parse_retry_after, parse_should_retry

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after-ms": "soon", "retry-after": "9"}, 9.0),
        ({"retry-after": "2.5"}, 2.5),
        ({"retry-after": "-3"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "inf"}, None),
        ({"retry-after": email.utils.formatdate(NOW + 30, usegmt=True)}, 30.0),
        ({"retry-after": email.utils.formatdate(NOW - 30, usegmt=True)}, 0.0),
        ({"retry-after": "next tuesday"}, None),
    ],
)
def test_retry_after_is_read_like_the_official_sdks(headers, expected):
    assert parse_retry_after(headers, now=lambda: NOW) == expected


@pytest.mark.parametrize(
    ("value", "expected"), [("true", True), ("FALSE", False), ("maybe", None), ("", None)]
)
def test_x_should_retry(value, expected):
    assert parse_should_retry({"x-should-retry": value}) is expected
