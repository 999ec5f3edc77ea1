"""A simulated OpenAI chat-completions server (../shared/providers.md §2, §19).

It answers the way api.openai.com does, bytes that the official SDK parses: the success body,
the ``{"error": {message, type, param, code}}`` envelope with the same status codes, the same
headers (x-request-id, openai-processing-ms, x-ratelimit-*, retry-after). It checks the bearer key
it was given, and echoes a wrong key masked as OpenAI does, which is exactly what a worker must
not let into its logs.

A raw ASGI app rather than a framework: the throughput benchmark drives hundreds of concurrent
slow requests through it on a core shared with the worker, and every microsecond here is one
the worker does not get.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ops.simulator.faults import Faults, FaultState

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_ROLES = {"system", "developer", "user", "assistant", "tool"}
_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("invalid_request_error", "Invalid request.", None),
    401: ("invalid_request_error", "Incorrect API key provided.", "invalid_api_key"),
    403: ("invalid_request_error", "Country, region, or territory not supported", None),
    404: (
        "invalid_request_error",
        "The model does not exist or you do not have access to it.",
        "model_not_found",
    ),
    429: ("requests", "Rate limit reached for requests", "rate_limit_exceeded"),
    500: (
        "server_error",
        "The server had an error while processing your request. Sorry about that!",
        None,
    ),
    503: ("server_error", "The engine is currently overloaded, please try again later", None),
}


def mask_key(key: str) -> str:
    """How OpenAI echoes a wrong key: a few leading and trailing characters."""
    return f"{key[:3]}{'*' * max(len(key) - 7, 3)}{key[-4:]}" if len(key) > 8 else "***"


def error_body(status: int, message: str | None = None, *, param: str | None = None) -> bytes:
    kind, default, code = _ERRORS.get(status, ("server_error", f"Error {status}", None))
    return json.dumps(
        {"error": {"message": message or default, "type": kind, "param": param, "code": code}}
    ).encode()


def reply_text(name: str, model: str, messages: list[dict[str, Any]]) -> str:
    """A deterministic reply naming who answered, so tests and the demo can see the route."""
    prompt = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
    digest = hashlib.sha256(str(prompt).encode()).hexdigest()[:8]
    return f"{name} ({model}) answers {digest}: {str(prompt)[:60]}"


def estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4)


class OpenAISimulator:
    """ASGI app. ``api_key=None`` accepts any caller (like a local vLLM without --api-key)."""

    def __init__(
        self,
        *,
        name: str = "sim",
        api_key: str | None = None,
        faults: Faults | None = None,
        models: list[str] | None = None,
        prefix: str = "/v1",
        seed: int | None = None,
    ) -> None:
        self.name = name
        self.api_key = api_key
        self.models = models or ["sim-model"]
        self.prefix = prefix.rstrip("/")
        self.state = FaultState(faults or Faults(), seed=seed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        self.state.stats.requests[path] += 1
        body = await _read_body(receive)
        if path == f"{self.prefix}/chat/completions" and method == "POST":
            await self._chat(scope, body, receive, send)
        elif path == f"{self.prefix}/models" and method == "GET":
            await self._models(scope, send)
        elif path.startswith("/_sim/"):
            await self._control(path, method, body, send)
        else:
            await self._respond(send, 404, error_body(404, f"Invalid URL ({method} {path})"))

    # --- provider endpoints -----------------------------------------------------------------

    async def _chat(self, scope: Scope, body: bytes, receive: Receive, raw_send: Send) -> None:
        stats = self.state.stats

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                stats.statuses[message["status"]] += 1
            await raw_send(message)

        stats.chat_requests += 1
        stats.in_flight += 1
        stats.peak_in_flight = max(stats.peak_in_flight, stats.in_flight)
        started = time.perf_counter()
        try:
            headers = _headers(scope)
            denied = self._check_auth(headers)
            request, problem = _parse_chat(body)
            stats.recent.append(
                {
                    "headers": {k: v for k, v in headers.items() if k != "authorization"},
                    "auth_ok": denied is None,
                    "body": request,
                }
            )
            if denied is not None:
                await self._respond(send, 401, denied)
                return
            if problem is not None:
                await self._respond(send, 400, error_body(400, problem[0], param=problem[1]))
                return
            faults = self.state.faults
            if faults.hang:
                await _until_disconnect(receive)
                return
            if faults.latency_ms:
                await asyncio.sleep(faults.latency_ms / 1000)
            if self.state.should_fail():
                await self._fail(send, faults)
                return
            if faults.malformed:
                await self._respond(send, 200, b'{"id": "chatcmpl-broken", "choices": [')
                return
            assert request is not None
            await self._respond(
                send, 200, self._completion(request), processing_s=time.perf_counter() - started
            )
        finally:
            stats.in_flight -= 1

    def _check_auth(self, headers: dict[str, str]) -> bytes | None:
        if self.api_key is None:
            return None
        header = headers.get("authorization", "")
        if not header.lower().startswith("bearer ") or not header[7:].strip():
            return error_body(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        given = header[7:].strip()
        if given != self.api_key:
            return error_body(
                401,
                f"Incorrect API key provided: {mask_key(given)}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
            )
        return None

    async def _fail(self, send: Send, faults: Faults) -> None:
        extra: list[tuple[bytes, bytes]] = []
        if faults.retry_after_s is not None:
            extra.append((b"retry-after", f"{faults.retry_after_s:g}".encode()))
        if faults.fail_status == 429:
            extra += [
                (b"x-ratelimit-limit-requests", b"500"),
                (b"x-ratelimit-remaining-requests", b"0"),
                (b"x-ratelimit-reset-requests", b"12ms"),
            ]
        await self._respond(send, faults.fail_status, error_body(faults.fail_status), extra)

    def _completion(self, request: dict[str, Any]) -> bytes:
        model = request["model"]
        text = reply_text(self.name, model, request["messages"])
        limit = request.get("max_completion_tokens") or request.get("max_tokens")
        finish_reason = "stop"
        if isinstance(limit, int) and estimate_tokens(text) > limit:
            text, finish_reason = text[: limit * 4], "length"
        prompt_tokens = sum(estimate_tokens(str(m.get("content", ""))) for m in request["messages"])
        completion_tokens = estimate_tokens(text)
        return json.dumps(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text, "refusal": None},
                        "logprobs": None,
                        "finish_reason": finish_reason,
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                    "completion_tokens_details": {
                        "reasoning_tokens": 0,
                        "audio_tokens": 0,
                        "accepted_prediction_tokens": 0,
                        "rejected_prediction_tokens": 0,
                    },
                },
                "service_tier": "default",
                "system_fingerprint": "fp_turnout_sim",
            }
        ).encode()

    async def _models(self, scope: Scope, send: Send) -> None:
        denied = self._check_auth(_headers(scope))
        if denied is not None:
            await self._respond(send, 401, denied)
            return
        data = [
            {"id": m, "object": "model", "created": 1721172741, "owned_by": "system"}
            for m in self.models
        ]
        await self._respond(send, 200, json.dumps({"object": "list", "data": data}).encode())

    # --- control endpoints ------------------------------------------------------------------

    async def _control(self, path: str, method: str, body: bytes, send: Send) -> None:
        if path == "/_sim/state" and method == "GET":
            pass
        elif path == "/_sim/faults" and method == "POST":
            try:
                changes = json.loads(body or b"{}")
                if not isinstance(changes, dict):
                    raise ValueError("send a JSON object of fault settings")
                self.state.faults = self.state.faults.updated(changes)
            except (ValueError, TypeError) as exc:
                await self._respond(send, 400, json.dumps({"error": str(exc)}).encode())
                return
        elif path == "/_sim/reset" and method == "POST":
            self.state.reset()
        else:
            await self._respond(send, 404, json.dumps({"error": "unknown control path"}).encode())
            return
        await self._respond(send, 200, json.dumps(self.state.snapshot()).encode())

    async def _respond(
        self,
        send: Send,
        status: int,
        body: bytes,
        extra_headers: list[tuple[bytes, bytes]] | None = None,
        *,
        processing_s: float = 0.0,
    ) -> None:
        headers = [
            (b"content-type", b"application/json"),
            (b"x-request-id", f"req_{uuid.uuid4().hex}".encode()),
            (b"openai-processing-ms", str(int(processing_s * 1000)).encode()),
            *(extra_headers or []),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _parse_chat(body: bytes) -> tuple[dict[str, Any] | None, tuple[str, str | None] | None]:
    """The request, or what OpenAI would say is wrong with it (message, param)."""
    try:
        request = json.loads(body)
    except ValueError:
        return None, ("We could not parse the JSON body of your request.", None)
    if not isinstance(request, dict):
        return None, ("The request body must be a JSON object.", None)
    if not isinstance(request.get("model"), str) or not request["model"]:
        return request, ("you must provide a model parameter", "model")
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        return request, ("[] is too short - 'messages'", "messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            return request, (f"Invalid value for 'messages[{index}].role'.", f"messages[{index}]")
    for field in ("max_tokens", "max_completion_tokens"):
        value = request.get(field)
        if value is not None and (not isinstance(value, int) or value < 1):
            return request, (f"Invalid '{field}': integer below minimum value.", field)
    return request, None


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


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
