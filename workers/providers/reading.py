"""Reading provider replies defensively, for every adapter.

A reply that is not what its protocol promises is an InvalidResponse carrying a short, clipped
snippet: never a crash, and never a megabyte of an HTML error page in the attempt log. Odd usage
numbers never cost a completion that arrived fine.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from routing.errors import InvalidResponse

#: The longest provider message kept in an error (and so in the attempt log).
MAX_ERROR_MESSAGE = 500


def read_json(raw: bytes) -> Any:
    """A 200 body as JSON; leading whitespace (DeepSeek's keep-alive blank lines) is fine."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        raise InvalidResponse(
            f"200 response is not JSON: {snippet(raw)}", status_code=200
        ) from None


def token_count(value: Any) -> int | None:
    """A usage count as the provider sent it, or None when it is not a sane one (a string, a
    negative number, 1e999, NaN)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and (not math.isfinite(value) or not value.is_integer()):
        return None
    count = int(value)
    return count if count >= 0 else None


def sane_counts(raw: Mapping[str, Any], *names: str) -> tuple[int, ...] | None:
    """The named counts, an absent one as 0; None when all are absent or any present one is
    not a sane count (a usage block that lies is no usage at all, not a cheap one)."""
    values = [raw.get(name) for name in names]
    if all(value is None for value in values):
        return None
    counts = [token_count(value) for value in values]
    if any(
        count is None and value is not None for count, value in zip(counts, values, strict=True)
    ):
        return None
    return tuple(count or 0 for count in counts)


def clip(text: str) -> str:
    """At most MAX_ERROR_MESSAGE characters; a cut text ends with "…", which tells the
    redactor that what precedes it may be the head of a secret (workers.redaction)."""
    return text if len(text) <= MAX_ERROR_MESSAGE else text[: MAX_ERROR_MESSAGE - 1] + "…"


def snippet(raw: bytes) -> str:
    """The head of a body, for an error message. One byte more than fits is decoded, so a
    longer body is cut by ``clip`` and marked as cut: a body cut silently here could end in
    the head of an echoed key that nothing marks (the attack run found 24-30 characters of a
    40-character key in the attempt log this way)."""
    return clip(raw[: MAX_ERROR_MESSAGE * 4 + 1].decode("utf-8", "replace").strip())
