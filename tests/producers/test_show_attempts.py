"""``turnout show``'s attempt log: each entry on one line, the skip's reason said once."""

from __future__ import annotations

from producers.cli import attempt_line
from routing.models import Attempt


def _skip(reason: str, message: str | None) -> Attempt:
    return Attempt.model_validate(
        {
            "deployment": "primary",
            "provider": "openai",
            "model": "gpt-4o-mini",
            "outcome": "skipped",
            "reason": reason,
            "message": message,
            "started_at": 0.0,
        }
    )


def test_a_breaker_skip_names_open_once_not_open_open() -> None:
    # The worker writes Skip.describe() plus the time: the reason already leads the message.
    line = attempt_line(_skip("open", "open (3 consecutive failures) until 12:00:05Z"))
    assert line == "  primary: skipped, open (3 consecutive failures) until 12:00:05Z"
    assert "open (open" not in line


def test_a_skip_whose_message_does_not_name_the_reason_keeps_both() -> None:
    line = attempt_line(_skip("over_budget", "spent $4.00 of $4.00 today"))
    assert line == "  primary: skipped, over_budget (spent $4.00 of $4.00 today)"


def test_a_skip_without_a_message_prints_the_reason_alone() -> None:
    assert attempt_line(_skip("open", None)) == "  primary: skipped, open"
