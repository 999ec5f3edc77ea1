"""Redis replies as text, whichever way a client was made: producers' and tools' clients return
bytes, workers' (``decode_responses``) return str, and the scripts' replies mix numbers in."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

Text = TypeVar("Text", bound=str)


def as_text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def as_literal(value: object, allowed: tuple[Text, ...]) -> Text:
    """A script's reply as one of the strings a Literal type allows; a ValueError for another
    (a script and its Python reader out of step)."""
    text = as_text(value)
    for candidate in allowed:
        if candidate == text:
            return candidate
    raise ValueError(f"{text!r} is none of {', '.join(allowed)}")


def decoded(fields: Mapping[object, object]) -> dict[str, str]:
    """A hash as ``HGETALL`` returned it, keys and values as text."""
    return {as_text(k): as_text(v) for k, v in fields.items()}
