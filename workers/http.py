"""The one seam between provider adapters and the HTTP client.

Adapters build an ``HttpCall`` and parse an ``HttpReply``; only ``HttpTransport.send`` does I/O.
That keeps adapters pure (tested without servers) and lets the client be swapped.

Why a pool per thread: the Celery threads pool runs hundreds of calls at once in one process,
and httpx's shared connection pool (httpcore 1.x) spends more CPU per request the more requests
are in flight (../shared/perf-notes.md; ops/bench). A pool per thread serves one request at a
time, so CPU per call stays flat as concurrency grows. All pools share one SSL context, because
building one costs ~18 ms.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpcore
import httpx

from routing.errors import (
    AddressUnreachable,
    AuthFailed,
    ConnectionFailed,
    ProviderError,
    ProviderTimeout,
)
from workers.reply_body import read_reply_body
from workers.reply_budget import MIB, ReplyBudget

#: No completion response is anywhere near this; a bigger body is a broken server.
MAX_BODY_BYTES = 32 * MIB
#: A transport's reply budget when it is given none: a worker passes its own
#: (TURNOUT_REPLY_BUDGET_MB); tools and tests that build a transport get this one.
DEFAULT_REPLY_BUDGET_BYTES = 256 * MIB


@dataclass(frozen=True)
class HttpCall:
    method: str
    url: str
    headers: Mapping[str, str] = field(repr=False)
    body: bytes = field(repr=False)


@dataclass(frozen=True)
class HttpReply:
    status: int
    #: Header names in lower case.
    headers: Mapping[str, str]
    body: bytes
    elapsed_s: float


class HttpTransport(Protocol):
    def send(self, call: HttpCall, *, timeout_s: float) -> HttpReply:
        """Send ``call`` and read the whole reply within ``timeout_s`` seconds in total.

        Raises ProviderTimeout, ConnectionFailed, InvalidResponse or ReplyBudgetExhausted;
        never returns an HTTP error as an exception (a 503 is a reply; classifying it is the
        adapter's job).
        """
        ...

    def close(self) -> None: ...


class _Deadline:
    """The end of the call the current thread is making: every socket operation is capped by the
    time left, so a call ends by its deadline whatever the server does (httpcore's own timeouts
    apply to each operation, and a server sending a byte per read timeout would never end)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def set(self, at: float | None) -> None:
        self._local.at = at

    def cap(self, timeout: float | None, expired: type[Exception]) -> float | None:
        at: float | None = getattr(self._local, "at", None)
        if at is None:
            return timeout
        remaining = at - time.monotonic()
        if remaining <= 0:
            raise expired("the call's deadline has passed")
        return remaining if timeout is None else min(timeout, remaining)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream, deadline: _Deadline) -> None:
        self._stream = stream
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, self._deadline.cap(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, self._deadline.cap(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        capped = self._deadline.cap(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(
            self._stream.start_tls(ssl_context, server_hostname, capped), self._deadline
        )

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, deadline: _Deadline) -> None:
        self._backend = httpcore.SyncBackend()
        self._deadline = deadline

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        capped = self._deadline.cap(timeout, httpcore.ConnectTimeout)
        stream = self._backend.connect_tcp(host, port, capped, local_address, socket_options)
        return _DeadlineStream(stream, self._deadline)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        capped = self._deadline.cap(timeout, httpcore.ConnectTimeout)
        stream = self._backend.connect_unix_socket(path, capped, socket_options)
        return _DeadlineStream(stream, self._deadline)

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class HttpcoreTransport:
    """HTTP/1.1 through httpcore (the transport under httpx), one connection pool per thread.

    httpcore rather than ``httpx.Client``: the client builds request and response models and
    runs auth, redirect and cookie machinery on every call, none of which a provider call uses;
    a whole job costs ~26% less CPU this way (measured, see ops/bench). Bodies are requested
    with ``accept-encoding: gzip, deflate``, as the providers' SDKs do, and decoded here.

    Every body, raw or decoded, counts against ``reply_budget``, shared by all the threads
    that use this transport (workers.reply_budget): a body over ``max_body_bytes`` is the
    provider's fault (InvalidResponse); one that does not fit what is left of the budget is
    the worker's (ReplyBudgetExhausted).
    """

    def __init__(
        self,
        *,
        connect_timeout_s: float = 5.0,
        max_body_bytes: int = MAX_BODY_BYTES,
        reply_budget: ReplyBudget | None = None,
    ) -> None:
        self._connect_timeout_s = connect_timeout_s
        self._max_body_bytes = max_body_bytes
        self.reply_budget = reply_budget or ReplyBudget(DEFAULT_REPLY_BUDGET_BYTES)
        self._ssl_context = httpx.create_ssl_context()
        self._local = threading.local()
        self._deadline = _Deadline()
        self._pools: list[httpcore.ConnectionPool] = []
        self._lock = threading.Lock()

    def _pool(self) -> httpcore.ConnectionPool:
        pool: httpcore.ConnectionPool | None = getattr(self._local, "pool", None)
        if pool is None:
            pool = httpcore.ConnectionPool(
                ssl_context=self._ssl_context,
                max_keepalive_connections=8,
                keepalive_expiry=60,
                network_backend=_DeadlineBackend(self._deadline),
            )
            self._local.pool = pool
            with self._lock:
                self._pools.append(pool)
        return pool

    def send(self, call: HttpCall, *, timeout_s: float) -> HttpReply:
        started = time.monotonic()
        deadline = started + timeout_s
        connect_s = min(self._connect_timeout_s, timeout_s)
        timeouts = {"connect": connect_s, "read": timeout_s, "write": timeout_s, "pool": timeout_s}
        headers = [*call.headers.items(), ("accept-encoding", "gzip, deflate")]
        self._deadline.set(deadline)
        answered = False
        try:
            with self._pool().stream(
                call.method,
                call.url,
                headers=headers,
                content=call.body,
                extensions={"timeout": timeouts},
            ) as response:
                answered = True
                reply_headers = {
                    k.decode("latin-1").lower(): v.decode("latin-1") for k, v in response.headers
                }
                body = read_reply_body(
                    response.iter_stream(),
                    encoding=reply_headers.get("content-encoding", ""),
                    budget=self.reply_budget,
                    max_bytes=self._max_body_bytes,
                    length=_content_length(reply_headers),
                )
        except ProviderError:
            raise
        except (httpcore.LocalProtocolError, TypeError) as exc:
            if answered and isinstance(exc, TypeError):
                raise  # a bug in reading the reply, not a credential: never a breaker's auth
            # Our own request was refused before it left: a header value that cannot be sent,
            # in practice a key with a newline or a non-ASCII character. The library's message
            # quotes the value, so none of it is kept.
            raise AuthFailed(
                "the request could not be sent: a header value is invalid (an API key with a "
                "newline, a space or a non-ASCII character?)"
            ) from None
        except httpcore.ConnectTimeout:
            raise ConnectionFailed(
                f"connect to {_where(call.url)} timed out after {connect_s:g}s"
            ) from None
        except httpcore.TimeoutException as exc:
            raise ProviderTimeout(
                f"no complete response within {timeout_s:g}s ({type(exc).__name__})"
            ) from None
        except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol) as exc:
            unreachable = _unreachable(exc, call.url)
            if unreachable is not None:
                raise AddressUnreachable(unreachable) from None
            where = f" (connecting to {_where(call.url)})" if not answered else ""
            raise ConnectionFailed(
                f"{type(exc).__name__}: {exc or 'connection failed'}{where}"
            ) from None
        finally:
            self._deadline.set(None)
        return HttpReply(response.status, reply_headers, body, time.monotonic() - started)

    def close(self) -> None:
        with self._lock:
            pools, self._pools = self._pools, []
        for pool in pools:
            pool.close()


def _content_length(headers: Mapping[str, str]) -> int | None:
    value = headers.get("content-length", "")
    return int(value) if value.isdigit() else None


def _unreachable(exc: httpcore.ConnectError | Exception, url: str) -> str | None:
    """What a connect error says when nothing can answer at ``url``: refused (nothing listens
    there) or no such host name; None for anything a retry may mend (a reset, a timeout, a
    resolver that failed for now). Names only the host and port, never the rest of the URL."""
    if not isinstance(exc, httpcore.ConnectError):
        return None
    cause = exc.__context__
    parts = urlsplit(url)
    where = _where(url)
    if isinstance(cause, ConnectionRefusedError):
        return f"connection refused at {where}: nothing listens there (is the base URL right?)"
    if isinstance(cause, socket.gaierror) and cause.errno == socket.EAI_NONAME:
        return f"no such host {parts.hostname} (is the base URL right?)"
    return None


def _where(url: str) -> str:
    """``host:port`` of ``url``, the port the call used when the URL names none; nothing else
    of the URL (a query string may hold a key)."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return "(an unreadable URL)"
    return f"{parts.hostname}:{port}"
