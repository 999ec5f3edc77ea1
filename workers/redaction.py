"""Scrubbing secrets out of text before it is stored or logged.

Provider error bodies can echo a key back (OpenAI: "Incorrect API key provided: sk-ab***yz"),
and exception text can carry anything, so every message a worker stores in the attempt log or
writes to its log passes through a Redactor that knows the secrets it was given.

What it masks, so that no 12 consecutive characters of a known secret survive, wherever a body
was cut and whatever a proxy echoes:
  * any run of ``FRAGMENT_RUN`` (12) or more characters of a known secret, anywhere: the whole
    key, its head (a body cut in the middle of it), its tail (a provider that echoes "...the
    last 12"), or a middle piece;
  * a known secret of 8 to 11 characters whole, and its head of 8 or more at a clipped end;
  * a known secret shorter than 8 characters where it follows a credential-shaped word
    ("api key", "token", "secret", "password", "authorization", "bearer"): elsewhere it could
    be an ordinary word;
  * unknown values after such a word (an echo of a key this process never had).
"""

from __future__ import annotations

import logging
import re
import threading
from collections import deque
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
#: Any run of this many characters of a known secret is masked wherever it stands: long enough
#: that ordinary text never matches a random key by chance, short enough that what survives of
#: a key (at most 11 characters at each side of a mask) is useless to an attacker.
FRAGMENT_RUN = 12
_CREDENTIAL_WORD = r"(?:api[ _-]?key|key|token|secret|password|passwd|authorization|bearer)"


class _MintedSecrets:
    """Secrets this process obtained while running (Vertex's OAuth2 access tokens), which no
    setting names: every Redactor of the process learns them, the log filter's included.

    The most recent ``MINTED_KEPT`` are kept: a token lives an hour and is refreshed about
    every 55 minutes, so older ones are long dead.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: deque[str] = deque(maxlen=MINTED_KEPT)
        #: Bumped on every new secret, so a Redactor catches up with one integer compare.
        self.version = 0

    def remember(self, secret: str) -> None:
        with self._lock:
            if secret in self._values:
                return
            self._values.append(secret)
            self.version += 1

    def snapshot(self) -> tuple[int, list[str]]:
        with self._lock:
            return self.version, list(self._values)


MINTED_KEPT = 64
_MINTED = _MintedSecrets()


def remember_minted_secret(secret: str) -> None:
    """Tell every Redactor of this process about a secret obtained at run time."""
    if secret:
        _MINTED.remember(secret)


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._minted_version = 0
        self._secrets: list[str] = []
        self._short: list[str] = []
        #: Every run of FRAGMENT_RUN characters of every known secret.
        self._runs: frozenset[str] = frozenset()
        self._short_echo: re.Pattern[str] | None = None
        self.add(*secrets)

    def add(self, *secrets: str) -> None:
        known = set(self._secrets)
        short = set(self._short)
        for secret in secrets:
            for form in (secret, secret.strip()):
                if form and len(form) >= MIN_SECRET_LENGTH:
                    known.add(form)
                elif form.strip():
                    short.add(form.strip())
        # Longest first, so a key that contains another key is removed whole.
        self._secrets = sorted(known, key=len, reverse=True)
        self._short = sorted(short, key=len, reverse=True)
        self._runs = frozenset(
            secret[i : i + FRAGMENT_RUN]
            for secret in self._secrets
            for i in range(len(secret) - FRAGMENT_RUN + 1)
        )
        self._short_echo = (
            re.compile(
                rf"({_CREDENTIAL_WORD}\W{{0,16}})(?:{'|'.join(map(re.escape, self._short))})"
                r"(?![A-Za-z0-9])",
                re.I,
            )
            if self._short
            else None
        )

    def __call__(self, text: str) -> str:
        if _MINTED.version != self._minted_version:
            self._minted_version, minted = _MINTED.snapshot()
            self.add(*minted)
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        text = self._fragments(text)
        text = self._clipped_head(text)
        if self._short_echo is not None:
            text = self._short_echo.sub(lambda m: m.group(1) + REDACTED, text)
        text = _ECHOED_KEY.sub(lambda m: m.group(1) + REDACTED, text)
        text = _AMZ_TOKEN.sub(lambda m: m.group(1) + REDACTED, text)
        return _BEARER.sub(lambda m: m.group(1) + REDACTED, text)

    def _fragments(self, text: str) -> str:
        """Mask every run of FRAGMENT_RUN or more characters of a known secret: a head left by
        a cut, a tail a provider echoes, a middle piece. One pass over the text's windows."""
        runs = self._runs
        if not runs or len(text) < FRAGMENT_RUN:
            return text
        spans: list[list[int]] = []
        for start in range(len(text) - FRAGMENT_RUN + 1):
            if text[start : start + FRAGMENT_RUN] in runs:
                end = start + FRAGMENT_RUN
                if spans and start <= spans[-1][1]:
                    spans[-1][1] = end
                else:
                    spans.append([start, end])
        for start, end in reversed(spans):
            text = text[:start] + REDACTED + text[end:]
        return text

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
