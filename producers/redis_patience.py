"""How producers ride out Redis going away (a restart, a failover, a ``CLIENT PAUSE``, a blip).

A submit, a wait or a read that fails because Redis cannot be reached is tried again, with
backoff, until Redis has been failing for ``budget_s``; then it raises RedisUnavailable, a
clear error naming Redis by host and port (never by a URL's password). ``Client`` rides out
``TURNOUT_REDIS_PATIENCE_S`` (30 s: a caller, or an HTTP client of ``turnout serve``, is
waiting, and a clear error after half a minute beats a hang); ``turnout batch`` rides out
``--redis-patience`` (300 s: nobody waits on an unattended run, and giving up means a rerun by
hand; five minutes covers a Sentinel failover with its default 30 s detection and 180 s
failover timeout, and the AOF replay of a restart).

Retrying is safe. A create whose reply was lost finds its own record and does not write it
again (create_job.lua); a message whose send failed is taken back with its job before another
is sent (``Client``), so no job gets a second message from one submit; a repeated
idempotency key finds the job the first submit stored.

Backoff after the n-th consecutive failure (n from 1): ``min(cap_s, base_s * 2**(n-1))``
seconds, times a random factor in [0.5, 1] so 64 waiting lines do not reconnect in step. A
streak of failures is timed from the start of its first failed try (a try that hung until the
socket timeout counts whole); a success ends the streak.

Only Redis being unreachable is ridden out: connection refused or reset, a timeout, Redis
still loading its data (``LOADING``), a replica not yet promoted (``READONLY``), kombu failing to
reach the broker. A wrong password, a script error or any other error is raised at once.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import urlsplit

import redis
from kombu.exceptions import OperationalError

from routing.errors import RedisUnavailable

T = TypeVar("T")

#: Errors that mean "Redis cannot be reached now", not "this request is wrong".
_OUTAGES: tuple[type[BaseException], ...] = (
    redis.ConnectionError,  # also BusyLoadingError: Redis replaying its AOF after a restart
    redis.TimeoutError,
    redis.ReadOnlyError,  # a failover's replica, not yet promoted
    OperationalError,  # kombu's publish when the broker is down
    ConnectionError,
)
#: Not an outage, though redis-py derives it from ConnectionError: waiting will not fix it.
_NEVER_OUTAGES: tuple[type[BaseException], ...] = (redis.AuthenticationError, RedisUnavailable)


def is_redis_outage(exc: BaseException) -> bool:
    """True when ``exc``, or what it was raised from (SubmitError wraps), is Redis away.
    RedisUnavailable is not: its patience is spent already."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, _NEVER_OUTAGES):
            return False
        if isinstance(seen, _OUTAGES) or _torn_connection(seen):
            return True
        seen = seen.__cause__
    return False


def _torn_connection(exc: BaseException) -> bool:
    """redis-py's asyncio connection, dropped by one coroutine while another writes on it,
    raises ``AttributeError: 'NoneType' object has no attribute 'writelines'`` from inside its
    own module (seen here when Redis is killed mid-run): that is Redis going away too. Only an
    AttributeError raised in redis-py's own code counts, so one of ours is never hidden."""
    if not isinstance(exc, AttributeError):
        return False
    frame = exc.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    return frame is not None and str(frame.tb_frame.f_globals.get("__name__", "")).startswith(
        "redis."
    )


def redis_location(url: str) -> str:
    """``Redis at host:port/db`` for messages: what the URL names, without its user or password."""
    try:
        parts = urlsplit(url)
        if parts.scheme == "unix":
            return f"Redis at {parts.path}"
        host = parts.hostname or "localhost"
        port = parts.port or 6379
    except ValueError:
        return "Redis"
    db = parts.path.strip("/")
    return f"Redis at {host}:{port}" + (f"/{db}" if db else "")


def redacted(text: str, url: str) -> str:
    """``text`` with the URL's password, and any URL's credentials, cut out."""
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    if password:
        text = text.replace(password, "***")
    return re.sub(r"(\w+://)[^/@\s]*@", r"\1***@", text)


@dataclass(frozen=True, kw_only=True)
class RedisPatience:
    #: Seconds of consecutive failures ridden out before giving up; 0 never retries.
    budget_s: float = 30.0
    base_s: float = 0.25
    cap_s: float = 5.0
    #: Where the budget was set, for the message that gives up.
    setting: str = "TURNOUT_REDIS_PATIENCE_S"
    #: Told of each failure that will be tried again (``turnout batch`` prints the first).
    on_outage: Callable[[BaseException], None] | None = field(default=None, compare=False)

    def delay(self, failures: int) -> float:
        """The pause before trying again after ``failures`` consecutive ones (from 1)."""
        backoff: float = self.base_s * 2 ** max(0, failures - 1)
        return min(self.cap_s, backoff) * random.uniform(0.5, 1)

    def streak(self, what: str, *, url: str = "", job_id: str | None = None) -> Streak:
        """A streak of failures for one operation made of several Redis calls."""
        return Streak(self, what, url=url, job_id=job_id)

    async def run(
        self,
        operation: Callable[[], Awaitable[T]],
        *,
        what: str = "Redis did not answer",
        url: str = "",
        job_id: str | None = None,
    ) -> T:
        """``await operation()``, tried again while Redis is away and the budget lasts."""
        return await self.streak(what, url=url, job_id=job_id).run(operation)

    def call(
        self,
        operation: Callable[[], T],
        *,
        what: str = "Redis did not answer",
        url: str = "",
        job_id: str | None = None,
    ) -> T:
        """``operation()`` for sync callers, tried again as ``run`` does."""
        return self.streak(what, url=url, job_id=job_id).call(operation)


class Streak:
    """Consecutive Redis failures of one operation: how long to back off, and when to stop."""

    def __init__(self, patience: RedisPatience, what: str, *, url: str, job_id: str | None) -> None:
        self.patience = patience
        self.what = what
        self.url = url
        self.job_id = job_id
        self._try_started = time.monotonic()
        self._first_failure: float | None = None
        self._failures = 0

    async def run(self, operation: Callable[[], Awaitable[T]]) -> T:
        """``await operation()``, tried again while Redis is away and this streak lasts."""
        while True:
            self.trying()
            try:
                return await operation()
            except Exception as exc:
                await asyncio.sleep(self.failed(exc))

    def call(self, operation: Callable[[], T]) -> T:
        """``operation()``, tried again while Redis is away and this streak lasts."""
        while True:
            self.trying()
            try:
                return operation()
            except Exception as exc:
                time.sleep(self.failed(exc))

    def trying(self) -> None:
        """A try starts now (its start times the streak if it fails)."""
        self._try_started = time.monotonic()

    def ok(self) -> None:
        """Redis answered: the streak is over."""
        self._first_failure = None
        self._failures = 0

    def failed(self, exc: Exception, *, started: float | None = None) -> float:
        """Seconds to wait before the next try; re-raises ``exc`` when it is not Redis away, and
        raises RedisUnavailable (from it) once the streak has lasted the budget. ``started``:
        when the failed try began, if not at the last ``trying``."""
        if not is_redis_outage(exc):
            raise exc
        if self._first_failure is None:
            self._first_failure = self._try_started if started is None else started
        self._failures += 1
        elapsed = time.monotonic() - self._first_failure
        left = self.patience.budget_s - elapsed
        if left <= 0:
            raise self.gave_up(exc, elapsed) from exc
        if self.patience.on_outage is not None:
            self.patience.on_outage(exc)
        return max(0.0, min(self.patience.delay(self._failures), left))

    def gave_up(self, exc: BaseException, elapsed: float) -> RedisUnavailable:
        where = redis_location(self.url) if self.url else "Redis"
        reason = redacted(f"{type(exc).__name__}: {exc}", self.url)
        budget = f"{self.patience.setting}={self.patience.budget_s:g}"
        return RedisUnavailable(
            f"{self.what}: {where} did not answer for {elapsed:.0f} s ({budget}): {reason}",
            job_id=self.job_id,
        )
