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

import threading
import time
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import httpcore
import httpx

from routing.errors import ConnectionFailed, InvalidResponse, ProviderError, ProviderTimeout

#: No completion response is anywhere near this; a bigger body is a broken server.
MAX_BODY_BYTES = 32 * 1024 * 1024


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

        Raises ProviderTimeout, ConnectionFailed or InvalidResponse; never returns an HTTP error
        as an exception (a 503 is a reply; classifying it is the adapter's job).
        """
        ...

    def close(self) -> None: ...


class HttpcoreTransport:
    """HTTP/1.1 through httpcore (the transport under httpx), one connection pool per thread.

    httpcore rather than ``httpx.Client``: the client builds request and response models and
    runs auth, redirect and cookie machinery on every call, none of which a provider call uses;
    a whole job costs ~26% less CPU this way (measured, see ops/bench). Bodies are requested
    with ``accept-encoding: gzip, deflate``, as the providers' SDKs do, and decoded here.
    """

    def __init__(
        self, *, connect_timeout_s: float = 5.0, max_body_bytes: int = MAX_BODY_BYTES
    ) -> None:
        self._connect_timeout_s = connect_timeout_s
        self._max_body_bytes = max_body_bytes
        self._ssl_context = httpx.create_ssl_context()
        self._local = threading.local()
        self._pools: list[httpcore.ConnectionPool] = []
        self._lock = threading.Lock()

    def _pool(self) -> httpcore.ConnectionPool:
        pool: httpcore.ConnectionPool | None = getattr(self._local, "pool", None)
        if pool is None:
            pool = httpcore.ConnectionPool(
                ssl_context=self._ssl_context, max_keepalive_connections=8, keepalive_expiry=60
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
        try:
            with self._pool().stream(
                call.method,
                call.url,
                headers=headers,
                content=call.body,
                extensions={"timeout": timeouts},
            ) as response:
                reply_headers = {
                    k.decode("latin-1").lower(): v.decode("latin-1") for k, v in response.headers
                }
                raw = self._read_body(response.iter_stream(), deadline, timeout_s)
        except ProviderError:
            raise
        except httpcore.ConnectTimeout:
            raise ConnectionFailed(f"connect timed out after {connect_s:g}s") from None
        except httpcore.TimeoutException as exc:
            raise ProviderTimeout(
                f"no complete response within {timeout_s:g}s ({type(exc).__name__})"
            ) from None
        except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol) as exc:
            raise ConnectionFailed(f"{type(exc).__name__}: {exc or 'connection failed'}") from None
        body = _decoded(raw, reply_headers.get("content-encoding", ""), self._max_body_bytes)
        return HttpReply(response.status, reply_headers, body, time.monotonic() - started)

    def _read_body(self, chunks: Iterable[bytes], deadline: float, timeout_s: float) -> bytes:
        """Read chunk by chunk, so a server that dribbles bytes cannot hold a call past its
        deadline by more than one read timeout."""
        received: list[bytes] = []
        size = 0
        for chunk in chunks:
            received.append(chunk)
            size += len(chunk)
            if size > self._max_body_bytes:
                raise InvalidResponse(f"response body larger than {self._max_body_bytes} bytes")
            if time.monotonic() > deadline:
                raise ProviderTimeout(f"response not complete within {timeout_s:g}s")
        return b"".join(received)

    def close(self) -> None:
        with self._lock:
            pools, self._pools = self._pools, []
        for pool in pools:
            pool.close()


def _decoded(body: bytes, encoding: str, limit: int) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise InvalidResponse(f"response uses an encoding we did not ask for: {encoding}")
    window = 16 + zlib.MAX_WBITS if "gzip" in encoding else zlib.MAX_WBITS
    try:
        decompressor = zlib.decompressobj(window)
        decoded = decompressor.decompress(body, limit + 1)
    except zlib.error as exc:
        raise InvalidResponse(f"response body is not valid {encoding}: {exc}") from None
    if len(decoded) > limit:
        raise InvalidResponse(f"decoded response body larger than {limit} bytes")
    return decoded
