"""A simulated AI21 Studio chat server (Jamba), ``/studio/v1`` (workers/providers/ai21.py).

The request and reply are the ones the ai21 SDK's models describe (``ChatCompletionResponse``:
``id``, ``choices[{index, message{role, content, tool_calls}, logprobs, finish_reason}]``,
``usage{prompt_tokens, completion_tokens, total_tokens}``). Errors carry the statuses the SDK
maps (400, 401, 403, 404, 408, 422, 424, 429, 500, 503, 530) in a FastAPI body,
``{"detail": ...}``; the wording is [unverified] (the SDK only passes the body's text along).
Validation follows Jamba's documented ranges: ``temperature`` 0-2, ``top_p`` 0-1, ``n`` 1-16,
``max_tokens`` at most 4096, and a prompt over ``context_window`` tokens is refused.
``GET /studio/v1/library/files`` is the probe.
"""

from __future__ import annotations

import uuid
from typing import Any

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

PREFIX = "/studio/v1"
_ROLES = {"system", "user", "assistant", "tool"}
_ERRORS: dict[int, str] = {
    400: "Bad request",
    401: "Forbidden: Bad or missing API token.",
    403: "Forbidden: the API key may not use this model.",
    404: "Not found",
    408: "Request timeout",
    422: "Unprocessable entity",
    424: "The model failed to process the request",
    429: "Too many requests: the rate limit was exceeded",
    500: "Internal server error",
    503: "Service unavailable: the model is overloaded",
    530: "Internal dependency error",
}


def detail(status: int, message: str | None = None) -> Reply:
    return Reply.json(status, {"detail": message or _ERRORS.get(status, f"Error {status}")})


def _field_error(field: str, message: str) -> Reply:
    """FastAPI's 422 for a body its schema refuses."""
    return Reply.json(
        422, {"detail": [{"loc": ["body", field], "msg": message, "type": "value_error"}]}
    )


class AI21Simulator(ProviderSimulator):
    protocol = "ai21"
    #: Jamba's context window (256K tokens).
    context_window = 256_000

    def __init__(self, **kwargs: Any) -> None:
        kwargs["models"] = kwargs.get("models") or ["jamba-mini", "jamba-large"]
        super().__init__(**kwargs)

    def match(self, incoming: Incoming) -> Endpoint | None:
        if incoming.method == "POST" and incoming.path == f"{PREFIX}/chat/completions":
            return "generate"
        if incoming.method == "GET" and incoming.path == f"{PREFIX}/library/files":
            return "probe"
        return None

    def not_found(self, incoming: Incoming) -> Reply:
        return detail(404)

    def authenticate(self, incoming: Incoming) -> Reply | None:
        if self.api_key is None:
            return None
        header = incoming.headers.get("authorization", "")
        if not header.lower().startswith("bearer ") or header[7:].strip() != self.api_key:
            return detail(401)
        return None

    def validate(self, incoming: Incoming) -> Reply | None:
        request = incoming.json
        if not isinstance(request, dict):
            return detail(400, "The body is not valid JSON")
        model = request.get("model")
        if not isinstance(model, str) or not model:
            return _field_error("model", "field required")
        if model not in self.models:
            return detail(404, f"Model {model} not found")
        messages = request.get("messages")
        if not isinstance(messages, list) or not messages:
            return _field_error("messages", "ensure this value has at least 1 items")
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in _ROLES:
                return _field_error(f"messages.{index}.role", "unexpected value")
        problem = _range_problem(request)
        if problem is not None:
            return _field_error(*problem)
        prompt_tokens = sum(estimate_tokens(str(m.get("content", ""))) for m in messages)
        if prompt_tokens > self.context_window:
            return detail(
                422,
                f"The prompt has {prompt_tokens} tokens, more than the model's context window "
                f"of {self.context_window} tokens",
            )
        return None

    def error(self, status: int, faults: Faults) -> Reply:
        reply = detail(status)
        reply.headers = retry_after_headers(faults)
        return reply

    def malformed(self) -> Reply:
        return Reply(200, b'{"id": "chat-broken", "choices": [{"index": 0, "message": ')

    def success(self, incoming: Incoming) -> Reply:
        request = incoming.json
        model, messages = request["model"], request["messages"]
        prompt = next(
            (str(m.get("content", "")) for m in reversed(messages) if m["role"] == "user"), ""
        )
        text = reply_text(self.name, model, prompt)
        limit = request.get("max_tokens")
        finish_reason = "stop"
        for stop in _stops(request.get("stop")):
            if stop in text:
                text = text[: text.index(stop)]
        if isinstance(limit, int) and estimate_tokens(text) > limit:
            text, finish_reason = text[: limit * 4], "length"
        prompt_tokens = sum(estimate_tokens(str(m.get("content", ""))) for m in messages)
        completion_tokens = estimate_tokens(text)
        return Reply.json(
            200,
            {
                "id": f"chat-{uuid.uuid4().hex}",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text, "tool_calls": None},
                        "logprobs": None,
                        "finish_reason": finish_reason,
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            },
        )

    def probe(self, incoming: Incoming) -> Reply:
        return Reply.json(200, [])


def _range_problem(request: dict[str, Any]) -> tuple[str, str] | None:
    checks = (
        ("temperature", 0.0, 2.0),
        ("top_p", 0.0, 1.0),
        ("n", 1, 16),
        ("max_tokens", 1, 4096),
    )
    for field, low, high in checks:
        value = request.get(field)
        if value is None:
            continue
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not low <= value <= high:
            return field, f"ensure this value is between {low} and {high}"
    if request.get("stream") not in (None, False):
        return "stream", "this simulator answers stream: false only"
    return None


def _stops(stop: Any) -> list[str]:
    if isinstance(stop, str):
        return [stop]
    return [s for s in stop if isinstance(s, str)] if isinstance(stop, list) else []
