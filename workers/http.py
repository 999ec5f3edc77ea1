"""The one seam between provider adapters and the HTTP client.

Adapters build an ``HttpCall`` and parse an ``HttpReply``; only ``HttpTransport.send`` does I/O.
That keeps adapters pure (tested without servers) and lets the client be swapped.

Why a client per thread: the Celery threads pool runs hundreds of calls at once in one process,
and httpx's shared connection pool (httpcore 1.x) spends more CPU per request the more requests
are in flight (measured in ../shared/perf-notes.md and ops/bench). A client per thread keeps
each pool to one in-flight request, so CPU per call stays flat as concurrency grows. All the
clients share one SSL context, because building one costs ~18 ms.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Protocol

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


class HttpxTransport:
    """httpx (or the API-compatible httpx2) with one client per thread."""

    def __init__(
        self,
        *,
        connect_timeout_s: float = 5.0,
        module: str = "httpx",
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self._httpx: ModuleType = importlib.import_module(module)
        self._connect_timeout_s = connect_timeout_s
        self._max_body_bytes = max_body_bytes
        self._ssl_context = self._httpx.create_ssl_context()
        self._local = threading.local()
        self._clients: list[Any] = []
        self._lock = threading.Lock()

    def _client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._httpx.Client(
                verify=self._ssl_context,
                limits=self._httpx.Limits(max_connections=None, max_keepalive_connections=8),
                follow_redirects=False,
                trust_env=False,
            )
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def send(self, call: HttpCall, *, timeout_s: float) -> HttpReply:
        httpx = self._httpx
        started = time.monotonic()
        deadline = started + timeout_s
        timeout = httpx.Timeout(
            timeout_s, connect=min(self._connect_timeout_s, timeout_s), pool=timeout_s
        )
        try:
            with self._client().stream(
                call.method,
                call.url,
                headers=dict(call.headers),
                content=call.body,
                timeout=timeout,
            ) as response:
                body = self._read_body(response, deadline, timeout_s)
                return HttpReply(
                    status=response.status_code,
                    headers={k.lower(): v for k, v in response.headers.items()},
                    body=body,
                    elapsed_s=time.monotonic() - started,
                )
        except ProviderError:
            raise
        except httpx.ConnectTimeout:
            raise ConnectionFailed(f"connect timed out after {timeout.connect:g}s") from None
        except httpx.TimeoutException as exc:
            raise ProviderTimeout(
                f"no complete response within {timeout_s:g}s ({type(exc).__name__})"
            ) from None
        except httpx.DecodingError as exc:
            raise InvalidResponse(f"response body could not be decoded: {exc}") from None
        except httpx.TransportError as exc:
            raise ConnectionFailed(f"{type(exc).__name__}: {exc or 'connection failed'}") from None

    def _read_body(self, response: Any, deadline: float, timeout_s: float) -> bytes:
        """Read chunk by chunk, so a server that dribbles bytes cannot hold a call past its
        deadline by more than one read timeout."""
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size > self._max_body_bytes:
                raise InvalidResponse(f"response body larger than {self._max_body_bytes} bytes")
            if time.monotonic() > deadline:
                raise ProviderTimeout(f"response not complete within {timeout_s:g}s")
        return b"".join(chunks)

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()
