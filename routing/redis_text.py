"""Redis replies as text, whichever way a client was made: producers' and tools' clients return
bytes, workers' (``decode_responses``) return str, and the scripts' replies mix numbers in."""

from __future__ import annotations

from collections.abc import Mapping


def as_text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def decoded(fields: Mapping[object, object]) -> dict[str, str]:
    """A hash as ``HGETALL`` returned it, keys and values as text."""
    return {as_text(k): as_text(v) for k, v in fields.items()}
