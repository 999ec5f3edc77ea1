"""A simulated Cohere v2 chat server (../shared/providers.md §14, §19).

It answers the way api.cohere.com does, in bytes the official cohere SDK parses: the v2 chat
body (``message.content`` text blocks, ``finish_reason``, usage as both ``billed_units`` and the
larger raw ``tokens``, which count Cohere's prompt template), and the flat ``{"id", "message"}``
error body with Cohere's status codes, 498 and 499 included.

A wrong key gets 401 ``invalid api token`` on every endpoint, ``/v1/check-api-key`` included:
Cohere documents a 401 for that endpoint and clients that use it read a wrong key from the
status (providers.md §14). The adapter also treats a 200 ``{"valid": false}`` as a wrong key,
should the real API answer that way.

Chat answers only ``stream: false`` (what ``ClientV2.chat`` sends); the SSE stream is not
simulated. ``max_input_tokens`` can be lowered on an instance to provoke Cohere's context
overflow 400 ("too many tokens: ...").
"""

from __future__ import annotations

import uuid
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
#: Tokens of the prompt template Cohere wraps around the messages: counted in ``usage.tokens``,
#: not billed.
TEMPLATE_TOKENS = 64
_ERRORS: dict[int, str] = {
    400: "invalid request: the request is not well formed.",
    401: "invalid api token",
    402: "Please add or update your payment method at https://dashboard.cohere.com/billing",
    403: "You do not have permission to access this resource.",
    404: "model not found, make sure the correct model ID was used and that you have access "
    "to the model.",
    422: "invalid request: the request is valid JSON but cannot be processed.",
    429: "You are past the per-minute request limit, please wait and try again later.",
    498: "invalid api token",
    499: "request cancelled by the client",
    500: "internal server error, this has been reported to our developers.",
    501: "the requested feature is not supported by this model",
    503: "service unavailable, please try again later.",
    504: "the request timed out, please try again later.",
}


def error_body(status: int, message: str | None = None) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "message": message or _ERRORS.get(status, f"error {status}")}


def _bad(message: str) -> Reply:
    return Reply.json(400, error_body(400, f"invalid request: {message}"))


class CohereSimulator(ProviderSimulator):
    """``api_key=None`` accepts any caller."""

    protocol = "cohere"
    #: The context window the "too many tokens" check uses (command-a's 256k).
    max_input_tokens = 256_000

    def match(self, incoming: Incoming) -> Endpoint | None:
        if incoming.method == "POST" and incoming.path in ("/v2/chat", "/v2/embed"):
            return "generate"
        if incoming.method == "POST" and incoming.path == "/v1/check-api-key":
            return "probe"
        return None

    def not_found(self, incoming: Incoming) -> Reply:
        return Reply.json(404, error_body(404, f"no route for {incoming.method} {incoming.path}"))

    def authenticate(self, incoming: Incoming) -> Reply | None:
        if self.api_key is None:
            return None
        header = incoming.headers.get("authorization", "")
        if not header.lower().startswith("bearer ") or not header[7:].strip():
            return Reply.json(401, error_body(401, "no api key supplied"))
        if header[7:].strip() != self.api_key:
            return Reply.json(401, error_body(401, "invalid api token"))
        return None

    def validate(self, incoming: Incoming) -> Reply | None:
        request = incoming.json
        if incoming.path == "/v2/embed":
            problem = embeddings.cohere_problem(request)
            return None if problem is None else Reply.json(400, error_body(400, problem))
        if not isinstance(request, dict):
            return _bad("the body is not a JSON object.")
        if not isinstance(request.get("model"), str) or not request["model"]:
            return _bad("model must be set.")
        messages = request.get("messages")
        if not isinstance(messages, list) or not messages:
            return _bad("messages must not be empty.")
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in _ROLES:
                return _bad(f"messages[{index}].role must be one of {sorted(_ROLES)}.")
        if request.get("stream") not in (None, False):
            return _bad("this simulator answers stream: false only.")
        problem = _sampling_problem(request)
        if problem is not None:
            return _bad(problem)
        prompt_tokens = sum(estimate_tokens(_content_text(m.get("content"))) for m in messages)
        if prompt_tokens + TEMPLATE_TOKENS > self.max_input_tokens:
            over = prompt_tokens + TEMPLATE_TOKENS - self.max_input_tokens
            return Reply.json(
                400,
                error_body(
                    400,
                    f"too many tokens: size limit exceeded by {over} tokens. Try using shorter "
                    f"or fewer inputs. The limit for this model is {self.max_input_tokens} "
                    "tokens.",
                ),
            )
        return None

    def error(self, status: int, faults: Faults) -> Reply:
        return Reply.json(status, error_body(status), retry_after_headers(faults))

    def malformed(self) -> Reply:
        return Reply(200, b'{"id": "broken", "finish_reason": "COMPLETE", "message": {"role": ')

    def success(self, incoming: Incoming) -> Reply:
        request = incoming.json
        if incoming.path == "/v2/embed":
            return Reply.json(200, embeddings.cohere_embed(request, str(uuid.uuid4())))
        messages = request["messages"]
        prompt = next(
            (_content_text(m.get("content")) for m in reversed(messages) if m["role"] == "user"),
            "",
        )
        text, finish_reason = _finished(
            reply_text(self.name, request["model"], prompt),
            request.get("max_tokens"),
            request.get("stop_sequences") or [],
        )
        input_tokens = sum(estimate_tokens(_content_text(m.get("content"))) for m in messages)
        output_tokens = estimate_tokens(text)
        return Reply.json(
            200,
            {
                "id": str(uuid.uuid4()),
                "message": {"role": "assistant", "content": [{"type": "text", "text": text}]},
                "finish_reason": finish_reason,
                "usage": {
                    "billed_units": {"input_tokens": input_tokens, "output_tokens": output_tokens},
                    "tokens": {
                        "input_tokens": input_tokens + TEMPLATE_TOKENS,
                        "output_tokens": output_tokens,
                    },
                    "cached_tokens": 0,
                },
            },
        )

    def probe(self, incoming: Incoming) -> Reply:
        return Reply.json(
            200,
            {
                "valid": True,
                "organization_id": "00000000-0000-4000-8000-00000000c0e1",
                "owner_id": "00000000-0000-4000-8000-0000000000a1",
            },
        )


def _sampling_problem(request: dict[str, Any]) -> str | None:
    max_tokens = request.get("max_tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        return "max_tokens must be a positive integer."
    p = request.get("p")
    if p is not None and (not isinstance(p, int | float) or not 0.01 <= p <= 0.99):
        return "p must be between 0.01 and 0.99 inclusive."
    temperature = request.get("temperature")
    if temperature is not None and (not isinstance(temperature, int | float) or temperature < 0):
        return "temperature must be a non-negative number."
    stops = request.get("stop_sequences")
    if stops is not None and (
        not isinstance(stops, list) or len(stops) > 5 or not all(isinstance(s, str) for s in stops)
    ):
        return "stop_sequences must be a list of at most 5 strings."
    return None


def _finished(text: str, max_tokens: Any, stops: list[str]) -> tuple[str, str]:
    """The reply cut the way the model would be: at a stop sequence (not included), or at
    ``max_tokens``."""
    cuts = [text.index(stop) for stop in stops if stop in text]
    if cuts:
        return text[: min(cuts)], "STOP_SEQUENCE"
    if isinstance(max_tokens, int) and estimate_tokens(text) > max_tokens:
        return text[: max_tokens * 4], "MAX_TOKENS"
    return text, "COMPLETE"


def _content_text(content: Any) -> str:
    """A message's text: v2 takes a string or a list of ``{"type": "text", "text"}`` blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(block.get("text", "")) for block in content if isinstance(block, dict))
    return ""
