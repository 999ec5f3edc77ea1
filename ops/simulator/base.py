"""What every provider simulator shares: an ASGI app with fault injection, request bookkeeping
and the control endpoints; a subclass supplies one wire protocol (paths, auth, bodies).

A raw ASGI app rather than a framework: the throughput benchmark drives hundreds of concurrent
slow requests through a simulator on a core shared with the worker.

Control endpoints (no auth; simulators bind 127.0.0.1 only):
    GET  /_sim/state    faults and stats (request counts, statuses, recent requests)
    POST /_sim/faults   change faults: {"fail_rate": 1, "fail_status": 503, "latency_ms": 200}
    POST /_sim/reset    faults back to their start values, stats cleared
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import urllib.parse
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from ops.simulator.faults import Faults, FaultState

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: Request headers that carry credentials: recorded by name and scheme, never by value.
SECRET_HEADERS = frozenset(
    {"authorization", "x-api-key", "api-key", "x-goog-api-key", "x-amz-security-token"}
)


@dataclass
class Incoming:
    """One request, as a simulator sees it."""

    method: str
    path: str
    #: The path exactly as sent (percent-encoding kept): SigV4 signs this.
    raw_path: str
    query: dict[str, str]
    raw_query: str
    headers: dict[str, str]
    body: bytes
    json: Any = None
    #: Filled by ``match``: named parts of the path (deployment, model, ...).
    params: dict[str, str] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """What tests may inspect; credential headers keep only their scheme."""
        headers = {}
        for name, value in self.headers.items():
            if name in SECRET_HEADERS:
                scheme = value.split(" ", 1)[0] if " " in value else "(value)"
                headers[name] = f"{scheme} [hidden]"
            else:
                headers[name] = value
        return {
            "method": self.method,
            "path": self.path,
            "raw_path": self.raw_path,
            "query": {k: v for k, v in self.query.items() if k != "key"},
            "query_has_key": "key" in self.query,
            "headers": headers,
            "body": self.json,
        }


@dataclass
class Reply:
    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    content_type: bytes = b"application/json"

    @classmethod
    def json(
        cls, status: int, payload: Any, headers: list[tuple[bytes, bytes]] | None = None
    ) -> Reply:
        return cls(status, json.dumps(payload).encode(), headers or [])


Endpoint = Literal["generate", "probe"]


class ProviderSimulator(ABC):
    """Base of the simulators: ``match`` says which requests it serves, the rest say how."""

    protocol: ClassVar[str] = ""

    def __init__(
        self,
        *,
        name: str = "sim",
        api_key: str | None = None,
        faults: Faults | None = None,
        models: list[str] | None = None,
        seed: int | None = None,
    ) -> None:
        self.name = name
        self.api_key = api_key
        self.models = models or ["sim-model"]
        self.state = FaultState(faults or Faults(), seed=seed)

    # --- what a protocol supplies -----------------------------------------------------------

    @abstractmethod
    def match(self, incoming: Incoming) -> Endpoint | None:
        """'generate' for completion endpoints (faults apply), 'probe' for cheap authenticated
        endpoints (models lists, token counts), None for anything else (404)."""

    @abstractmethod
    def authenticate(self, incoming: Incoming) -> Reply | None:
        """None when the caller may proceed; otherwise the provider's auth error."""

    @abstractmethod
    def validate(self, incoming: Incoming) -> Reply | None:
        """None for a request the provider would accept; otherwise its 4xx."""

    @abstractmethod
    def success(self, incoming: Incoming) -> Reply:
        """The answer to a valid request: a completion naming the simulator and model."""

    @abstractmethod
    def probe(self, incoming: Incoming) -> Reply:
        """The answer of the provider's cheap authenticated endpoint (a models list, say)."""

    @abstractmethod
    def error(self, status: int, faults: Faults) -> Reply:
        """The provider's answer when a fault says this request fails with ``status``."""

    def malformed(self) -> Reply:
        return Reply(200, b'{"id": "broken", "choices": [')

    def not_found(self, incoming: Incoming) -> Reply:
        return Reply.json(404, {"error": f"no route for {incoming.method} {incoming.path}"})

    def response_headers(
        self, incoming: Incoming, processing_s: float
    ) -> list[tuple[bytes, bytes]]:
        """Headers every reply carries (request ids and the like)."""
        return [(b"x-request-id", f"req_{uuid.uuid4().hex}".encode())]

    # --- the shared machinery -----------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        incoming = _incoming(scope, await _read_body(receive))
        self.state.stats.requests[incoming.path] += 1
        if incoming.path.startswith("/_sim/"):
            await _send(send, self._control(incoming))
            return
        kind = self.match(incoming)
        if kind is None:
            await _send(send, self.not_found(incoming))
            return
        started = time.perf_counter()
        reply = await self._serve(kind, incoming, receive)
        if reply is None:
            return  # hung until the client went away
        reply.headers = [
            *self.response_headers(incoming, time.perf_counter() - started),
            *reply.headers,
        ]
        if kind == "generate":
            self.state.stats.statuses[reply.status] += 1
        await _send(send, reply)

    async def _serve(self, kind: Endpoint, incoming: Incoming, receive: Receive) -> Reply | None:
        stats = self.state.stats
        denied = self.authenticate(incoming)
        if kind == "probe":
            stats.probe_requests += 1
            if denied is None and self.state.faults.down:
                return self.error(self.state.faults.fail_status, self.state.faults)
            return denied or self.probe(incoming)
        stats.chat_requests += 1
        stats.in_flight += 1
        stats.peak_in_flight = max(stats.peak_in_flight, stats.in_flight)
        try:
            record = incoming.record()
            record["auth_ok"] = denied is None
            record["at"] = time.time()
            stats.recent.append(record)
            stats.arrivals.append(record["at"])
            credential = sent_credential(incoming)
            if credential:
                stats.count_key(key_fingerprint(credential), record["at"])
            if denied is not None:
                return denied
            if self.state.faults.echo_credential_at is not None:
                return echoed_credential_page(incoming, self.state.faults.echo_credential_at)
            problem = self.validate(incoming)
            if problem is not None:
                return problem
            faults = self.state.faults
            if faults.hang:
                await _until_disconnect(receive)
                return None
            if faults.latency_ms:
                await asyncio.sleep(faults.latency_ms / 1000)
            if faults.down or self.state.should_fail():
                return self.error(faults.fail_status, faults)
            if faults.malformed:
                return self.malformed()
            return self.success(incoming)
        finally:
            stats.in_flight -= 1

    def _control(self, incoming: Incoming) -> Reply:
        if incoming.path == "/_sim/faults" and incoming.method == "POST":
            try:
                changes = json.loads(incoming.body or b"{}")
                if not isinstance(changes, dict):
                    raise ValueError("send a JSON object of fault settings")
                self.state.faults = self.state.faults.updated(changes)
            except (ValueError, TypeError) as exc:
                return Reply.json(400, {"error": str(exc)})
        elif incoming.path == "/_sim/reset" and incoming.method == "POST":
            self.state.reset()
        elif not (incoming.path == "/_sim/state" and incoming.method == "GET"):
            return Reply.json(404, {"error": "unknown control path"})
        return Reply.json(200, {"protocol": self.protocol, **self.state.snapshot()})


#: Headers a credential travels in, across the protocols the simulators speak.
_CREDENTIAL_HEADERS = ("authorization", "api-key", "x-api-key", "x-goog-api-key")


def key_fingerprint(credential: str) -> str:
    """How the simulator names a credential in its statistics: a digest, never the value."""
    return hashlib.sha256(credential.encode()).hexdigest()[:16]


def sent_credential(incoming: Incoming) -> str:
    """The credential a request carried (a bearer token without its scheme), or ''."""
    for name in _CREDENTIAL_HEADERS:
        value = incoming.headers.get(name)
        if value:
            return value[7:].strip() if value.lower().startswith("bearer ") else value.strip()
    return incoming.query.get("key", "")


def echoed_credential_page(incoming: Incoming, offset: int) -> Reply:
    """A proxy's 401 page that repeats the credential it was sent, ``offset`` characters in."""
    sent = next(
        (incoming.headers[name] for name in _CREDENTIAL_HEADERS if incoming.headers.get(name)), ""
    )
    if sent.lower().startswith("bearer "):
        sent = sent[7:]
    filler = ("<p>upstream refused the request</p>" * (offset // 35 + 1))[:offset]
    page = f"{filler}{sent} was refused; contact the gateway's operator.</body>"
    return Reply(401, page.encode(), content_type=b"text/html")


def retry_after_headers(faults: Faults) -> list[tuple[bytes, bytes]]:
    if faults.retry_after_s is None:
        return []
    return [(b"retry-after", f"{faults.retry_after_s:g}".encode())]


def estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4)


def reply_text(name: str, model: str, prompt: str) -> str:
    """A deterministic reply naming who answered, so tests and the demo can see the route."""
    import hashlib

    digest = hashlib.sha256(prompt.encode()).hexdigest()[:8]
    return f"{name} ({model}) answers {digest}: {prompt[:60]}"


def _incoming(scope: Scope, body: bytes) -> Incoming:
    raw_query = scope.get("query_string", b"").decode("latin-1")
    try:
        parsed: Any = json.loads(body) if body else None
    except ValueError:
        parsed = None
    raw_path = scope.get("raw_path") or scope["path"].encode()
    return Incoming(
        method=scope["method"],
        path=scope["path"],
        raw_path=raw_path.decode("latin-1") if isinstance(raw_path, bytes) else raw_path,
        query=dict(urllib.parse.parse_qsl(raw_query, keep_blank_values=True)),
        raw_query=raw_query,
        headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]},
        body=body,
        json=parsed,
    )


async def _send(send: Send, reply: Reply) -> None:
    headers = [(b"content-type", reply.content_type), *reply.headers]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
