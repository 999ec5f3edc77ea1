"""Breaker transitions as alerts: one structured log line each, and a webhook POST when one is set.

Whoever sees a transition (a worker recording a call, beat probing a route, an operator at the
CLI) builds a ``BreakerEvent`` and hands it to ``AlertSink.emit``. The sink always logs it on the
``turnout.alerts`` logger, with the JSON payload in ``extra={"alert": ...}``; with
``TURNOUT_ALERT_WEBHOOK`` set it also POSTs the payload, Slack-compatible (a ``text`` field),
from one daemon thread. What is promised:

- ``emit`` never blocks and never raises: it appends to a bounded queue (full: the oldest event
  is dropped and counted) and returns; delivery, retries and timeouts happen on the thread.
- Delivery is best effort: ``attempts`` tries per event, each bounded by ``timeout_s``; retried
  on transport errors, 429 and 5xx. Between tries it waits the reply's Retry-After (at most
  RETRY_AFTER_MAX_S), otherwise full-jitter exponential backoff: before try n+1,
  ``uniform(0, min(backoff_max_s, backoff_base_s * 2**(n-1)))``. Other replies (4xx, 3xx) fail
  the event at once. An event that fails is logged (with its route, without the URL) and dropped.
- The webhook URL is a credential (a Slack webhook carries its token in the path): it is in no
  log line, exception text or repr this module writes, and httpx's own request log line has it
  replaced while the sink's thread runs.
- Reasons pass through a redactor before they leave the process: a provider error echoing a key
  must not end up in a chat channel.

This module does not import Celery: workers, beat and the CLI all use it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from workers.providers.retry_headers import parse_retry_after
from workers.redaction import Redactor, secrets_of

if TYPE_CHECKING:
    from workers.settings import WorkerSettings

__all__ = [
    "AlertSink",
    "AlertStats",
    "BreakerEvent",
    "EventName",
    "process_source",
    "sink_from_settings",
]

log = logging.getLogger("turnout.alerts")

EventName = Literal[
    "opened",
    "reopened",
    "half_open",
    "closed",
    "credential_invalid",
    "failback",
    "forced_open",
    "forced_closed",
    "reset",
]

#: Events that mean traffic is being turned away: logged at WARNING, the rest at INFO.
WARNING_EVENTS: frozenset[str] = frozenset(
    {"opened", "reopened", "credential_invalid", "forced_open"}
)
#: A Retry-After longer than this is cut to it: an alert hours late is no alert.
RETRY_AFTER_MAX_S = 30.0
#: A reason longer than this (a provider's error body, say) is clipped for the chat line.
MAX_REASON_CHARS = 300
#: Replaces the webhook URL in httpx's log lines.
URL_PLACEHOLDER = "[alert webhook]"

#: event -> (emoji, what happened, what it means), for ``BreakerEvent.text``.
_WORDING: dict[EventName, tuple[str, str, str]] = {
    "opened": (":red_circle:", "opened", ""),
    "reopened": (":red_circle:", "re-opened", ": still failing, open for longer"),
    "half_open": (":large_yellow_circle:", "half-open", ": probing"),
    "closed": (":large_green_circle:", "closed", ": traffic returns"),
    "credential_invalid": (
        ":closed_lock_with_key:",
        "credential invalid",
        ": open until a probe succeeds",
    ),
    "failback": (":white_check_mark:", "failed back", ": serving traffic again"),
    "forced_open": (":no_entry:", "forced open by an operator", ""),
    "forced_closed": (":large_green_circle:", "forced closed by an operator", ": traffic returns"),
    "reset": (":arrows_counterclockwise:", "reset by an operator", ""),
}


def process_source(role: str = "worker") -> str:
    """``worker host:pid``: the ``source`` of an event this process saw."""
    return f"{role} {socket.gethostname()}:{os.getpid()}"


class BreakerEvent(BaseModel):
    """One breaker transition, as logged and posted."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event: EventName
    route_id: str
    deployment: str
    provider: str | None = None
    #: Why: "5 consecutive failures", "credential rejected", an operator's note. One line,
    #: clipped to MAX_REASON_CHARS.
    reason: str = ""
    #: The breaker's state after the transition (closed, open, half_open).
    state: str
    #: When it happened (epoch seconds; the fleet's breaker uses Redis's clock).
    at: float = Field(default_factory=time.time)
    #: Who saw it: "worker host:pid" (``process_source``), "beat", "cli".
    source: str

    @field_validator("reason")
    @classmethod
    def _one_clipped_line(cls, value: str) -> str:
        line = " ".join(value.split())
        return line if len(line) <= MAX_REASON_CHARS else line[: MAX_REASON_CHARS - 1] + "…"

    def text(self) -> str:
        """One line for a chat channel: ``:red_circle: turnout: openai-main opened (reason)``."""
        emoji, happened, meaning = _WORDING[self.event]
        because = f" ({self.reason})" if self.reason else ""
        line = f"{emoji} turnout: {self.route_id} {happened}{because}{meaning}"
        return " ".join(line.split())

    def payload(self) -> dict[str, Any]:
        """What the webhook receives: Slack's ``text`` and every field, JSON-ready."""
        return {"text": self.text(), **self.model_dump(mode="json")}


@dataclass(frozen=True)
class AlertStats:
    #: events the webhook accepted (2xx)
    sent: int = 0
    #: events that failed every try (or were refused) and were dropped
    failed: int = 0
    #: events pushed out of a full queue, or left queued when ``close`` gave up
    dropped: int = 0


class _RetryableReply(Exception):
    def __init__(self, status: int, retry_after_s: float | None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.retry_after_s = retry_after_s


class _RefusedReply(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


class _Aborted(Exception):
    """``close`` gave up waiting: no further tries."""


class _UrlScrubber(logging.Filter):
    """Attached to the ``httpx`` logger, whose INFO line names every request's full URL."""

    def __init__(self, forms: list[str]) -> None:
        super().__init__()
        self._forms = forms

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(form in message for form in self._forms):
            for form in self._forms:
                message = message.replace(form, URL_PLACEHOLDER)
            record.msg, record.args = message, ()
        return True


def _url_forms(url: str) -> list[str]:
    """The URL as given and as httpx prints it, and its path and query alone (the token), longest
    first so the whole URL is replaced before its parts."""
    forms = {url, str(httpx.URL(url))}
    parts = urlsplit(url)
    tail = parts.path + (f"?{parts.query}" if parts.query else "")
    if len(tail) >= 8:  # a bare "/" or "/hook" is no secret and would mangle ordinary text
        forms.add(tail)
    return sorted(forms, key=len, reverse=True)


class AlertSink:
    """Logs every event and, with a webhook URL, posts it from a background thread.

    One sink per process is the intent (``sink_from_settings``); it may be built before a fork:
    the thread starts on the first ``emit`` in the process that emits.
    """

    def __init__(
        self,
        webhook_url: str | SecretStr | None,
        *,
        timeout_s: float = 5.0,
        attempts: int = 3,
        max_queue: int = 1000,
        transport: httpx.BaseTransport | None = None,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 8.0,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        url = webhook_url.get_secret_value() if isinstance(webhook_url, SecretStr) else webhook_url
        url = (url or "").strip() or None
        # Never echo the URL in these errors: it is a credential.
        if url is not None and urlsplit(url).scheme not in ("http", "https"):
            raise ValueError("the alert webhook URL must be an http(s) URL")
        try:
            self._url_forms = _url_forms(url) if url is not None else []
        except httpx.InvalidURL:
            raise ValueError("the alert webhook URL is not a valid URL") from None
        if attempts < 1 or max_queue < 1 or timeout_s <= 0:
            raise ValueError("attempts and max_queue must be at least 1, timeout_s above 0")
        self._url = url
        self._timeout_s = timeout_s
        self._attempts = attempts
        self._max_queue = max_queue
        self._transport = transport
        self._backoff = wait_random_exponential(multiplier=backoff_base_s, max=backoff_max_s)
        self._redact = redact or Redactor()
        self._reset_process_state()

    def _reset_process_state(self) -> None:
        """Fresh queue, lock and thread: at construction, and in a child after a fork (the
        parent's thread does not exist there, and its lock may have been held)."""
        self._pid = os.getpid()
        self._cond = threading.Condition()
        self._queue: deque[dict[str, Any]] = deque()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._abort = threading.Event()
        self._dropping = False
        self._sent = self._failed = self._dropped = 0

    def __repr__(self) -> str:
        return f"AlertSink(webhook={'set' if self._url else 'unset'}, stats={self.stats})"

    @property
    def webhook_set(self) -> bool:
        return self._url is not None

    @property
    def stats(self) -> AlertStats:
        return AlertStats(sent=self._sent, failed=self._failed, dropped=self._dropped)

    # --- the caller's side: never blocks, never raises ------------------------------------------

    def emit(self, event: BreakerEvent) -> None:
        """Log ``event`` and queue it for the webhook; returns at once."""
        try:
            if event.reason:
                event = event.model_copy(update={"reason": self._redact(event.reason)})
            payload = event.payload()
            level = logging.WARNING if event.event in WARNING_EVENTS else logging.INFO
            log.log(level, payload["text"], extra={"alert": payload})
            if self._url is not None:
                self._enqueue(payload)
        except Exception as error:  # an alert must never take down what it reports on
            with contextlib.suppress(Exception):  # logging itself failed: nothing left to tell
                log.warning("alert not emitted (%s)", type(error).__name__)

    def _enqueue(self, payload: dict[str, Any]) -> None:
        if self._pid != os.getpid():
            self._reset_process_state()
        burst_started = False
        with self._cond:
            if self._closed:
                self._dropped += 1
                return
            if len(self._queue) >= self._max_queue:
                self._queue.popleft()
                self._dropped += 1
                burst_started, self._dropping = not self._dropping, True
            self._queue.append(payload)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="turnout-alerts", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        if burst_started:
            log.warning(
                "alert queue full (%d events): dropping the oldest (%d dropped so far)",
                self._max_queue,
                self._dropped,
            )

    def close(self, timeout_s: float = 2.0) -> None:
        """Deliver what can be delivered within ``timeout_s``, then stop the thread.

        Returns within ``timeout_s`` (a little more, never a hang): events still queued then are
        counted as dropped, and an event in flight gets no further tries. Later ``emit`` calls
        still log, and count as dropped for the webhook.
        """
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread.ident != threading.get_ident():
            thread.join(timeout_s)
            if not thread.is_alive():
                return
        self._abort.set()
        with self._cond:
            self._dropped += len(self._queue)
            self._queue.clear()

    # --- the thread's side -------------------------------------------------------------------

    def _run(self) -> None:
        assert self._url is not None
        scrubber = _UrlScrubber(self._url_forms)
        httpx_log = logging.getLogger("httpx")
        httpx_log.addFilter(scrubber)
        try:
            with httpx.Client(
                timeout=self._timeout_s, transport=self._transport, follow_redirects=False
            ) as client:
                while (payload := self._next()) is not None:
                    self._deliver(client, self._url, payload)
        except Exception as error:  # building the client failed: nothing can be sent
            with self._cond:
                self._closed = True
                self._failed += len(self._queue)
                self._queue.clear()
            log.warning("alert webhook unusable (%s); alerts are logged only", type(error).__name__)
        finally:
            httpx_log.removeFilter(scrubber)

    def _next(self) -> dict[str, Any] | None:
        with self._cond:
            while not self._queue:
                self._dropping = False  # the backlog cleared: a later overflow is a new burst
                if self._closed or self._abort.is_set():
                    return None
                self._cond.wait()
            if self._abort.is_set():
                return None
            return self._queue.popleft()

    def _deliver(self, client: httpx.Client, url: str, payload: dict[str, Any]) -> None:
        tries = 0

        def post() -> None:
            nonlocal tries
            if self._abort.is_set():
                raise _Aborted
            tries += 1
            reply = client.post(url, json=payload)
            if reply.is_success:
                return
            if reply.status_code == 429 or reply.status_code >= 500:
                raise _RetryableReply(reply.status_code, parse_retry_after(reply.headers))
            raise _RefusedReply(reply.status_code)

        retrying = Retrying(
            stop=stop_after_attempt(self._attempts),
            wait=self._wait,
            retry=retry_if_exception_type((httpx.TransportError, _RetryableReply)),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            retrying(post)
        except Exception as error:
            self._failed += 1
            why = str(error) if isinstance(error, _RetryableReply | _RefusedReply) else None
            log.warning(
                "alert webhook failed (%s) after %d %s; event %s for %s dropped",
                why or type(error).__name__,
                tries,
                "try" if tries == 1 else "tries",
                payload.get("event"),
                payload.get("route_id"),
            )
        else:
            self._sent += 1

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome is not None else None
        if isinstance(error, _RetryableReply) and error.retry_after_s is not None:
            return min(error.retry_after_s, RETRY_AFTER_MAX_S)
        return float(self._backoff(state))

    def _sleep(self, seconds: float) -> None:
        self._abort.wait(seconds)  # close() cuts a backoff short


def sink_from_settings(
    settings: WorkerSettings, *, redact: Callable[[str], str] | None = None
) -> AlertSink:
    """The process's sink: posting to TURNOUT_ALERT_WEBHOOK when set, logging only otherwise
    (also when the variable holds no http(s) URL, which is reported once, without its value).

    ``redact`` scrubs reasons; by default a Redactor knowing the settings' secrets (a worker
    passes one that also knows its config's key variables).
    """
    redactor = redact or Redactor(secrets_of(settings, None))
    try:
        return AlertSink(settings.alert_webhook, redact=redactor)
    except ValueError as error:
        log.warning("TURNOUT_ALERT_WEBHOOK ignored: %s; alerts are logged only", error)
        return AlertSink(None, redact=redactor)
