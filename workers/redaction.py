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

import json
import logging
import re
import threading
import urllib.parse
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class _Known:
    """What a Redactor masks, built once and swapped whole (threads read it without a lock)."""

    #: Longest first, so a key that contains another key is removed whole.
    secrets: tuple[str, ...] = ()
    short: tuple[str, ...] = ()
    #: Every run of FRAGMENT_RUN characters of every secret (a URL's only past its host).
    runs: frozenset[str] = frozenset()
    short_echo: re.Pattern[str] | None = None

    @classmethod
    def of(cls, secrets: Iterable[str]) -> _Known:
        known: set[str] = set()
        short: set[str] = set()
        for secret in secrets:
            for form in _forms(secret):
                if len(form) >= MIN_SECRET_LENGTH:
                    known.add(form)
                elif form:
                    short.add(form)
        ordered = tuple(sorted(known, key=len, reverse=True))
        runs = frozenset(
            part[i : i + FRAGMENT_RUN]
            for secret in ordered
            for part in (_run_source(secret),)
            for i in range(len(part) - FRAGMENT_RUN + 1)
        )
        shorts = tuple(sorted(short, key=len, reverse=True))
        echo = (
            re.compile(
                rf"({_CREDENTIAL_WORD}\W{{0,16}})(?:{'|'.join(map(re.escape, shorts))})"
                r"(?![A-Za-z0-9])",
                re.I,
            )
            if shorts
            else None
        )
        return cls(ordered, shorts, runs, echo)


def _forms(secret: str) -> set[str]:
    """A secret as it may appear in text: as given, trimmed, and escaped the ways bodies and
    URLs escape it (a JSON string's ``\\/``, percent-encoding), so an escaped echo of an AWS
    secret or a webhook URL is masked whole, not left in pieces."""
    trimmed = secret.strip()
    if not trimmed:
        return set()
    return {
        secret.strip("\n"),
        trimmed,
        json.dumps(trimmed)[1:-1],
        json.dumps(trimmed)[1:-1].replace("/", "\\/"),
        urllib.parse.quote(trimmed, safe=""),
    } - {""}


def _run_source(secret: str) -> str:
    """What runs are taken from: a URL's part after its host (a webhook's scheme and host are
    shared with ordinary URLs: "https://api.mycorp..." would mask "https://api.openai.com")."""
    parts = urlsplit(secret) if "://" in secret else None
    if parts is not None and parts.scheme and parts.netloc:
        return parts.path + (f"?{parts.query}" if parts.query else "")
    return secret


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._given: tuple[str, ...] = ()
        self._known = _Known()
        self._minted_version = -1
        self.add(*secrets)

    def add(self, *secrets: str) -> None:
        self._given = (*self._given, *secrets)
        self._rebuild()

    def _rebuild(self) -> None:
        """What it masks: the secrets it was given and the process's minted ones now (the
        oldest minted drop out as new ones come: at most MINTED_KEPT are known). The version is
        read before the snapshot and stored after the swap, so a secret minted meanwhile makes
        the next call rebuild again rather than be missed."""
        version, minted = _MINTED.snapshot()
        self._known = _Known.of((*self._given, *minted))
        self._minted_version = version

    def __call__(self, text: str) -> str:
        if _MINTED.version != self._minted_version:
            self._rebuild()
        known = self._known
        for secret in known.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        text = self._fragments(text, known.runs)
        text = self._clipped_head(text, known.secrets)
        if known.short_echo is not None:
            text = known.short_echo.sub(lambda m: m.group(1) + REDACTED, text)
        text = _ECHOED_KEY.sub(lambda m: m.group(1) + REDACTED, text)
        text = _AMZ_TOKEN.sub(lambda m: m.group(1) + REDACTED, text)
        return _BEARER.sub(lambda m: m.group(1) + REDACTED, text)

    @staticmethod
    def _fragments(text: str, runs: frozenset[str]) -> str:
        """Mask every run of FRAGMENT_RUN or more characters of a known secret: a head left by
        a cut, a tail a provider echoes, a middle piece. One pass over the text's windows."""
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

    @staticmethod
    def _clipped_head(text: str, secrets: tuple[str, ...]) -> str:
        """A message clipped in the middle of a secret keeps its head, which no whole-secret
        replacement matches: drop any such head at a clipped end."""
        if not text.endswith(_CLIPPED):
            return text
        body = text[: -len(_CLIPPED)]
        for secret in secrets:
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
