"""Scrubbing secrets out of text before it is stored or logged.

Provider error bodies can echo a key back (OpenAI: "Incorrect API key provided: sk-ab***yz"),
and exception text can carry anything, so every message a worker stores in the attempt log or
writes to its log passes through a Redactor that knows the secrets it was given.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

REDACTED = "[redacted]"
#: Shortest value treated as a secret: shorter ones would redact ordinary words.
MIN_SECRET_LENGTH = 8

_ECHOED_KEY = re.compile(r"(api[ _-]?key(?: provided)?\s*[:=]?\s*)([^\s,.;'\"]{4,})", re.I)
_BEARER = re.compile(r"(bearer\s+)([^\s,;'\"]+)", re.I)


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        self.add(*secrets)

    def add(self, *secrets: str) -> None:
        known = set(self._secrets)
        known.update(s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH)
        # Longest first, so a key that contains another key is removed whole.
        self._secrets = sorted(known, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        text = _ECHOED_KEY.sub(lambda m: m.group(1) + REDACTED, text)
        return _BEARER.sub(lambda m: m.group(1) + REDACTED, text)


class RedactingFilter(logging.Filter):
    """A logging filter that renders each record and scrubs it, tracebacks included.

    Attach it to handlers, not loggers: a logger's filters do not see records that propagate
    up from its children.
    """

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redactor(record.getMessage())
        record.args = ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor(record.exc_text)
        return True


def install_log_redaction(redactor: Redactor, logger: logging.Logger | None = None) -> None:
    """Attach a RedactingFilter to every handler of ``logger`` (the root logger by default)."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter(redactor))
