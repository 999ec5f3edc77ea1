"""A simulated Ollama server, native API (../shared/providers.md §15.1, §19).

Like the real server, ``POST /api/chat`` streams unless the request says ``"stream": false``:
NDJSON (``application/x-ndjson``), ``done: false`` chunks carrying pieces of the reply, then a
final ``done: true`` object with the statistics. So a client that forgets ``stream: false`` gets
exactly what it would get from Ollama, and has to cope with it. With ``stream: false`` the
answer is one object: model, created_at, message, done, done_reason, durations in nanoseconds,
prompt_eval_count, eval_count.

Only models in ``models`` exist (``x`` and ``x:latest`` name the same one); any other gets
Ollama's 404. With ``api_key`` set the server behaves as ollama.com and requires
``Authorization: Bearer <key>`` (401 ``unauthorized``) on every endpoint; without one, no auth,
as a local server. ``GET /api/tags`` is the probe.

Context, as the real server handles it: the model runs with ``options.num_ctx`` tokens (4096 when
the request names none, the default on a small GPU). A chat that does not fit is cut to fit,
silently (the oldest turns dropped, then the head of what is left), unless the request says
``"truncate": false``: then it is llama-server's 400, passed on by Ollama as the error string,
``request (N tokens) exceeds the available context size (M tokens), try increasing it``.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from ops.simulator import embeddings
from ops.simulator.base import (
    Endpoint,
    Incoming,
    ProviderSimulator,
    Reply,
    estimate_tokens,
    reply_text,
    retry_after_headers,
)
from ops.simulator.faults import Faults

_ROLES = {"system", "user", "assistant", "tool"}
_CHUNK_CHARS = 16
#: The context a model is loaded with when the request names no num_ctx.
DEFAULT_NUM_CTX = 4096
_ERRORS: dict[int, str] = {
    400: "invalid request body",
    401: "unauthorized",
    403: "remote inference is unavailable",
    404: "model not found, try pulling it first",
    429: "too many requests, please slow down",
    500: "the model failed to generate a response",
    502: "cloud model is unreachable",
    503: "server busy, please try again.  maximum pending requests exceeded",
}


def error_reply(status: int, message: str | None = None) -> Reply:
    return Reply.json(status, {"error": message or _ERRORS.get(status, f"error {status}")})


def _created_at() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _tagged(model: str) -> str:
    return model if ":" in model.rsplit("/", 1)[-1] else f"{model}:latest"


class OllamaSimulator(ProviderSimulator):
    """``api_key=None`` is a local server (no auth); a key makes it ollama.com."""

    protocol = "ollama"

    def match(self, incoming: Incoming) -> Endpoint | None:
        if incoming.method == "POST" and incoming.path in ("/api/chat", "/api/embed"):
            return "generate"
        if incoming.method == "GET" and incoming.path == "/api/tags":
            return "probe"
        return None

    def not_found(self, incoming: Incoming) -> Reply:
        return Reply(404, b"404 page not found", content_type=b"text/plain")

    def authenticate(self, incoming: Incoming) -> Reply | None:
        if self.api_key is None:
            return None
        header = incoming.headers.get("authorization", "")
        if not header.lower().startswith("bearer ") or header[7:].strip() != self.api_key:
            return error_reply(401, "unauthorized")
        return None

    def validate(self, incoming: Incoming) -> Reply | None:
        request = incoming.json
        if not isinstance(request, dict):
            return error_reply(400, "missing request body" if not incoming.body else None)
        model = request.get("model")
        if not isinstance(model, str) or not model:
            return error_reply(400, "model is required")
        if _tagged(model) not in {_tagged(m) for m in self.models}:
            return error_reply(404, f"model '{model}' not found, try pulling it first")
        if incoming.path == "/api/embed":
            problem = embeddings.ollama_problem(request)
            return None if problem is None else error_reply(400, problem)
        messages = request.get("messages")
        if not isinstance(messages, list) or not all(
            isinstance(m, dict) and m.get("role") in _ROLES for m in messages
        ):
            return error_reply(400, "messages must be a list of {role, content} objects")
        options = request.get("options")
        if options is not None and not isinstance(options, dict):
            return error_reply(400, "options must be an object")
        num_ctx = _num_ctx(options)
        prompt_tokens = _prompt_tokens(messages)
        if request.get("truncate") is False and prompt_tokens >= num_ctx:
            detail = {
                "code": 400,
                "message": f"request ({prompt_tokens} tokens) exceeds the available context "
                f"size ({num_ctx} tokens), try increasing it",
                "type": "exceed_context_size_error",
                "n_prompt_tokens": prompt_tokens,
                "n_ctx": num_ctx,
            }
            return error_reply(400, json.dumps({"error": detail}))
        return None

    def error(self, status: int, faults: Faults) -> Reply:
        reply = error_reply(status)
        reply.headers = retry_after_headers(faults)
        return reply

    def malformed(self) -> Reply:
        return Reply(200, b'{"model": "sim-model", "message": {"role": "assistant", "content": "')

    def success(self, incoming: Incoming) -> Reply:
        request = incoming.json
        if incoming.path == "/api/embed":
            return Reply.json(200, embeddings.ollama_embed(request))
        model, messages = request["model"], request["messages"]
        options = request.get("options") or {}
        if not messages:  # the real server only loads the model
            return Reply.json(200, _final(model, "", "load", 0, 0))
        if request.get("truncate") is not False:
            messages = _truncated(messages, _num_ctx(options))
        prompt = next(
            (str(m.get("content", "")) for m in reversed(messages) if m["role"] == "user"), ""
        )
        text, done_reason = _finished(
            reply_text(self.name, model, prompt),
            options.get("num_predict"),
            options.get("stop") or [],
        )
        prompt_tokens = _prompt_tokens(messages)
        final = _final(model, text, done_reason, prompt_tokens, estimate_tokens(text))
        if request.get("stream") is False:
            return Reply.json(200, final)
        return _ndjson(model, text, final)

    def probe(self, incoming: Incoming) -> Reply:
        return Reply.json(200, {"models": [_tag_entry(m) for m in self.models]})

    def response_headers(
        self, incoming: Incoming, processing_s: float
    ) -> list[tuple[bytes, bytes]]:
        return []  # Ollama sends no request ids


def _num_ctx(options: Any) -> int:
    value = options.get("num_ctx") if isinstance(options, dict) else None
    return value if isinstance(value, int) and value > 0 else DEFAULT_NUM_CTX


def _prompt_tokens(messages: list[dict[str, Any]]) -> int:
    return sum(estimate_tokens(str(m.get("content", ""))) for m in messages)


def _truncated(messages: list[dict[str, Any]], num_ctx: int) -> list[dict[str, Any]]:
    """What the model sees of a chat over ``num_ctx``: system turns and the newest turns that
    fit, and of a last turn that alone does not fit, its tail. Nobody is told."""
    if _prompt_tokens(messages) < num_ctx:
        return messages
    system = [m for m in messages if m["role"] == "system"]
    kept: list[dict[str, Any]] = []
    room = num_ctx - 1 - _prompt_tokens(system)
    for message in reversed([m for m in messages if m["role"] != "system"]):
        tokens = _prompt_tokens([message])
        if tokens > room:
            if not kept:  # the newest turn alone is too long: the head of it is lost
                content = str(message.get("content", ""))
                kept.append({**message, "content": content[len(content) - max(room, 1) * 4 :]})
            break
        kept.insert(0, message)
        room -= tokens
    return system + kept


def _finished(text: str, num_predict: Any, stops: Any) -> tuple[str, str]:
    """The reply cut at a stop sequence (done_reason stop) or at ``num_predict`` (length)."""
    stops = [stops] if isinstance(stops, str) else stops
    cuts = [text.index(s) for s in stops if isinstance(s, str) and s and s in text]
    if cuts:
        return text[: min(cuts)], "stop"
    if isinstance(num_predict, int) and 0 < num_predict < estimate_tokens(text):
        return text[: num_predict * 4], "length"
    return text, "stop"


def _final(
    model: str, text: str, done_reason: str, prompt_tokens: int, eval_tokens: int
) -> dict[str, Any]:
    prompt_ns, eval_ns, load_ns = prompt_tokens * 2_000_000, eval_tokens * 20_000_000, 1_334_875
    return {
        "model": model,
        "created_at": _created_at(),
        "message": {"role": "assistant", "content": text},
        "done": True,
        "done_reason": done_reason,
        "total_duration": load_ns + prompt_ns + eval_ns,
        "load_duration": load_ns,
        "prompt_eval_count": prompt_tokens,
        "prompt_eval_duration": prompt_ns,
        "eval_count": eval_tokens,
        "eval_duration": eval_ns,
    }


def _ndjson(model: str, text: str, final: dict[str, Any]) -> Reply:
    """What the server streams: the reply in pieces, then the final object with empty content
    (the statistics travel only on the last line)."""
    pieces = [text[i : i + _CHUNK_CHARS] for i in range(0, len(text), _CHUNK_CHARS)]
    lines = [
        {
            "model": model,
            "created_at": _created_at(),
            "message": {"role": "assistant", "content": piece},
            "done": False,
        }
        for piece in pieces
    ]
    lines.append({**final, "message": {"role": "assistant", "content": ""}})
    body = "".join(json.dumps(line) + "\n" for line in lines).encode()
    return Reply(200, body, content_type=b"application/x-ndjson")


def _tag_entry(model: str) -> dict[str, Any]:
    name = _tagged(model)
    return {
        "name": name,
        "model": name,
        "modified_at": datetime.fromtimestamp(1_722_000_000, UTC).isoformat(),
        "size": 2_019_393_189,
        "digest": hashlib.sha256(name.encode()).hexdigest(),
        "details": {
            "parent_model": "",
            "format": "gguf",
            "family": "llama",
            "families": ["llama"],
            "parameter_size": "3.2B",
            "quantization_level": "Q4_K_M",
        },
    }
