"""Reading provider replies defensively, for every adapter.

A reply that is not what its protocol promises is an InvalidResponse carrying a short, clipped
snippet: never a crash, and never a megabyte of an HTML error page in the attempt log.
"""

from __future__ import annotations

import json
from typing import Any

from routing.errors import InvalidResponse

#: The longest provider message kept in an error (and so in the attempt log).
MAX_ERROR_MESSAGE = 500


def read_json(raw: bytes) -> Any:
    """A 200 body as JSON; leading whitespace (DeepSeek's keep-alive blank lines) is fine."""
    try:
        return json.loads(raw)
    except ValueError:
        raise InvalidResponse(
            f"200 response is not JSON: {snippet(raw)}", status_code=200
        ) from None


def clip(text: str) -> str:
    return text if len(text) <= MAX_ERROR_MESSAGE else text[: MAX_ERROR_MESSAGE - 1] + "…"


def snippet(raw: bytes) -> str:
    return clip(raw[:MAX_ERROR_MESSAGE].decode("utf-8", "replace").strip())
