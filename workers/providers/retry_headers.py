"""What a provider's response headers say about retrying, parsed the way the official SDKs do.

Order (openai-python and anthropic-sdk-python ``_parse_retry_after_header``): ``retry-after-ms``
(milliseconds), then ``retry-after`` as seconds, then ``retry-after`` as an HTTP date.
``x-should-retry: true|false`` is the server's own verdict and overrides the status code.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Callable, Mapping


def parse_retry_after(
    headers: Mapping[str, str], *, now: Callable[[], float] = time.time
) -> float | None:
    """Seconds the provider asked us to wait, or None when it did not say (or said nonsense)."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms is not None:
        try:
            return _sane(float(raw_ms) / 1000)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        return _sane(float(raw))
    except ValueError:
        pass
    parsed = email.utils.parsedate_tz(raw)
    if parsed is None:
        return None
    # A date already past means "now".
    return max(0.0, email.utils.mktime_tz(parsed) - now())


def _sane(seconds: float) -> float | None:
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def parse_should_retry(headers: Mapping[str, str]) -> bool | None:
    value = headers.get("x-should-retry", "").strip().lower()
    if value == "true":
        return True
    if value == "false":
        return False
    return None


#: One part of a Go-style duration as OpenAI and Groq write their ``x-ratelimit-reset-*``
#: headers: ``6m0s``, ``7.66s``, ``2m59.56s``, ``1h2m3s``, ``250ms``.
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_reset_duration(value: str | None) -> float | None:
    """Seconds in an ``x-ratelimit-reset-tokens`` value; None when absent or unreadable."""
    text = (value or "").strip()
    if not text:
        return None
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        return None
    return _sane(sum(float(number) * _UNIT_S[unit] for number, unit in parts))
