"""Script replies read as the Literal strings the Python side types them with."""

import pytest

from routing.redis_text import as_literal
from routing.routes import SKIP_CAUSES, TRANSITION_CHANGES


def test_a_reply_is_read_as_one_of_the_literals_strings_from_bytes_or_text():
    assert as_literal(b"no_probe_permit", SKIP_CAUSES) == "no_probe_permit"
    assert as_literal("failback", TRANSITION_CHANGES) == "failback"


def test_a_string_the_python_side_does_not_know_is_an_error_not_a_silent_pass():
    with pytest.raises(ValueError, match="'half-open' is none of"):
        as_literal(b"half-open", TRANSITION_CHANGES)


def test_the_literals_hold_every_string_the_routers_and_operators_use():
    assert set(SKIP_CAUSES) == {"open", "no_probe_permit", "cooling", "rate_limited", "closed"}
    assert set(TRANSITION_CHANGES) == {
        "opened",
        "reopened",
        "half_open",
        "closed",
        "failback",
        "cooled",
        "forced_open",
        "forced_closed",
        "reset",
    }
