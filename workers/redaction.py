"""Scrubbing secrets out of text before it is stored or logged.

Provider error bodies can echo a key back (OpenAI: "Incorrect API key provided: sk-ab***yz"),
and exception text can carry anything, so every message a worker stores in the attempt log or
writes to its log passes through a Redactor that knows the secrets it was given.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pydantic import SecretStr

if TYPE_CHECKING:
    from routing.config import TurnoutConfig
    from workers.settings import WorkerSettings

REDACTED = "[redacted]"
#: Shortest value treated as a secret: shorter ones would redact ordinary words.
MIN_SECRET_LENGTH = 8

_ECHOED_KEY = re.compile(r"(api[ _-]?key(?: provided)?\s*[:=]?\s*)([^\s,.;'\"]{4,})", re.I)
_BEARER = re.compile(r"(bearer\s+)([^\s,;'\"]+)", re.I)
_AMZ_TOKEN = re.compile(r"(x-amz-security-token\s*[:=]\s*)(\S+)", re.I)
#: A clipped message ends with this; what precedes it may be the head of a secret.
_CLIPPED = "…"
#: The shortest head of a secret recognised at a clipped end.
MIN_FRAGMENT = 8


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        self.add(*secrets)

    def add(self, *secrets: str) -> None:
        known = set(self._secrets)
        for secret in secrets:
            for form in (secret, secret.strip()):
                if form and len(form) >= MIN_SECRET_LENGTH:
                    known.add(form)
        # Longest first, so a key that contains another key is removed whole.
        self._secrets = sorted(known, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        text = self._clipped_head(text)
        text = _ECHOED_KEY.sub(lambda m: m.group(1) + REDACTED, text)
        text = _AMZ_TOKEN.sub(lambda m: m.group(1) + REDACTED, text)
        return _BEARER.sub(lambda m: m.group(1) + REDACTED, text)

    def _clipped_head(self, text: str) -> str:
        """A message clipped in the middle of a secret keeps its head, which no whole-secret
        replacement matches: drop any such head at a clipped end."""
        if not text.endswith(_CLIPPED):
            return text
        body = text[: -len(_CLIPPED)]
        for secret in self._secrets:
            for length in range(min(len(secret), len(body)), MIN_FRAGMENT - 1, -1):
                if body.endswith(secret[:length]):
                    return body[:-length] + REDACTED + _CLIPPED
        return text


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


def secrets_of(settings: WorkerSettings, config: TurnoutConfig | None) -> list[str]:
    """Every secret a worker may hold: each SecretStr setting (API keys, AWS secret and session
    token, the alert webhook URL) and the values of the key variables the config names."""
    found = [
        value.get_secret_value()
        for name in type(settings).model_fields
        if isinstance(value := getattr(settings, name), SecretStr)
    ]
    if settings.alert_webhook is not None:
        # The whole URL is above; its path and query alone carry the token too (a Slack webhook's
        # path is its credential), and a log line may show only those.
        parts = urlsplit(settings.alert_webhook.get_secret_value())
        found.append(parts.path + (f"?{parts.query}" if parts.query else ""))
    for deployment in config.deployments.values() if config else ():
        if deployment.key_env and (value := settings.value_of(deployment.key_env)):
            found.append(value)
    return found
