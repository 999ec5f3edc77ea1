"""A simulated OpenAI chat-completions server (../shared/providers.md §2, §19).

It answers the way api.openai.com does, bytes the official SDK parses: the success body, the
``{"error": {message, type, param, code}}`` envelope with the same status codes, the same headers
(x-request-id, openai-processing-ms, x-ratelimit-*, retry-after). It checks the bearer key it was
given and echoes a wrong key masked as OpenAI does, which is exactly what a worker must not let
into its logs. Paths live under ``/v1``.
"""

from __future__ import annotations

import json
import time
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
from ops.simulator.model_refusals import openai_refusal
from ops.simulator.quirks import (
    REASONING_TOKENS,
    groq_too_large,
    groq_tpm_limit,
    is_groq,
    is_magistral,
    is_reasoning_model,
    magistral_content,
)
from ops.simulator.tool_replies import chosen_tool, instance_of, structured_text

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


def error_body(
    status: int, message: str | None = None, *, param: str | None = None
) -> dict[str, Any]:
    kind, default, code = _ERRORS.get(status, ("server_error", f"Error {status}", None))
    return {"error": {"message": message or default, "type": kind, "param": param, "code": code}}


def _tool_problem(request: dict[str, Any]) -> tuple[str, str] | None:
    """OpenAI's refusals of a malformed tool conversation, in its words (message, param): a
    tool message answering no preceding tool call, an assistant's tool calls left unanswered,
    a response_format json_schema without its schema."""
    messages = request["messages"]
    pending: set[str] = set()
    pending_at = 0
    for index, message in enumerate(messages):
        if message.get("role") == "tool":
            if message.get("tool_call_id") not in pending:
                return (
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.",
                    f"messages.[{index}].role",
                )
            pending.discard(message["tool_call_id"])
            continue
        if pending:
            return (
                "An assistant message with 'tool_calls' must be followed by tool messages "
                "responding to each 'tool_call_id'. The following tool_call_ids did not have "
                f"response messages: {', '.join(sorted(pending))}",
                f"messages.[{pending_at}].role",
            )
        calls = message.get("tool_calls") or []
        for number, call in enumerate(calls):
            length = len(str(call.get("id", ""))) if isinstance(call, dict) else 0
            if length > 40:
                return (
                    f"Invalid 'messages[{index}].tool_calls[{number}].id': string too long. "
                    f"Expected a string with maximum length 40, but got a string with length "
                    f"{length} instead.",
                    f"messages[{index}].tool_calls[{number}].id",
                )
        pending = {str(call.get("id")) for call in calls if isinstance(call, dict)}
        pending_at = index
    form = request.get("response_format")
    if isinstance(form, dict) and form.get("type") == "json_schema":
        spec = form.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            return ("Missing required parameter: 'response_format.json_schema'.", "response_format")
    return None


def _tool_or_structured(
    request: dict[str, Any], broken_json: bool
) -> tuple[str | None, list[dict[str, Any]] | None] | None:
    """(content, tool_calls) of a reply to tools or a response_format; None otherwise."""
    last = request["messages"][-1]
    tools = request.get("tools") or []
    choice = request.get("tool_choice") or "auto"
    if last.get("role") == "tool":
        return f"The tool answered: {last.get('content')}", None
    if tools and choice != "none" and last.get("role") == "user":
        named = choice["function"]["name"] if isinstance(choice, dict) else None
        name, schema = chosen_tool(
            [
                {"name": t["function"]["name"], "schema": t["function"].get("parameters")}
                for t in tools
            ],
            named,
        )
        arguments = json.dumps(instance_of(schema) or {})
        call = {
            "id": f"call_{uuid.uuid4().hex[:24]}",
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        }
        return None, [call]
    form = request.get("response_format")
    if isinstance(form, dict) and form.get("type") == "json_schema":
        return structured_text(form["json_schema"].get("schema", {}), broken_json), None
    if isinstance(form, dict) and form.get("type") == "json_object":
        return structured_text({"type": "object"}, broken_json), None
    return None


class OpenAISimulator(ProviderSimulator):
    """``api_key=None`` accepts any caller (like a local vLLM without --api-key)."""

    protocol = "openai"
    prefix = "/v1"

    def match(self, incoming: Incoming) -> Endpoint | None:
        if incoming.method == "POST" and incoming.path in (
            f"{self.prefix}/chat/completions",
            f"{self.prefix}/embeddings",
        ):
            return "generate"
        if incoming.method == "GET" and incoming.path == f"{self.prefix}/models":
            return "probe"
        return None

    def not_found(self, incoming: Incoming) -> Reply:
        body = error_body(404, f"Invalid URL ({incoming.method} {incoming.path})")
        body["error"]["code"] = None  # OpenAI's wrong path has no code, unlike a wrong model
        return Reply.json(404, body)

    def authenticate(self, incoming: Incoming) -> Reply | None:
        if self.api_key is None:
            return None
        header = incoming.headers.get("authorization", "")
        if not header.lower().startswith("bearer ") or not header[7:].strip():
            return Reply.json(
                401,
                error_body(
                    401,
                    "You didn't provide an API key. You need to provide your API key in an "
                    "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                ),
            )
        given = header[7:].strip()
        if given != self.api_key:
            return Reply.json(
                401,
                error_body(
                    401,
                    f"Incorrect API key provided: {mask_key(given)}. You can find your API key "
                    "at https://platform.openai.com/account/api-keys.",
                ),
            )
        return None

    def validate(self, incoming: Incoming) -> Reply | None:
        request = incoming.json
        if incoming.path.endswith("/embeddings"):
            problem = embeddings.openai_problem(request)
            return (
                None
                if problem is None
                else Reply.json(400, error_body(400, *problem[:1], param=problem[1]))
            )
        if not isinstance(request, dict):
            return Reply.json(
                400, error_body(400, "We could not parse the JSON body of your request.")
            )
        if not isinstance(request.get("model"), str) or not request["model"]:
            return Reply.json(
                400, error_body(400, "you must provide a model parameter", param="model")
            )
        messages = request.get("messages")
        if not isinstance(messages, list) or not messages:
            return Reply.json(
                400, error_body(400, "[] is too short - 'messages'", param="messages")
            )
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in _ROLES:
                return Reply.json(
                    400,
                    error_body(
                        400,
                        f"Invalid value for 'messages[{index}].role'.",
                        param=f"messages[{index}]",
                    ),
                )
        for field in ("max_tokens", "max_completion_tokens"):
            value = request.get(field)
            if value is not None and (not isinstance(value, int) or value < 1):
                return Reply.json(
                    400,
                    error_body(
                        400, f"Invalid '{field}': integer below minimum value.", param=field
                    ),
                )
        tool_problem = _tool_problem(request)
        if tool_problem is not None:
            return Reply.json(400, error_body(400, tool_problem[0], param=tool_problem[1]))
        refused = openai_refusal(request["model"], request)
        if refused is not None:
            return Reply.json(400, refused)
        if is_groq(self.name):
            return self._groq_tpm(request)
        return None

    def _groq_tpm(self, request: dict[str, Any]) -> Reply | None:
        """Groq counts the prompt and max_tokens against the tier's tokens per minute first."""
        model = request["model"]
        limit = groq_tpm_limit(model, self.state.faults.tpm_limit)
        if limit is None:
            return None
        prompt = sum(estimate_tokens(str(m.get("content", ""))) for m in request["messages"])
        budget = request.get("max_completion_tokens") or request.get("max_tokens") or 0
        if prompt + budget <= limit:
            return None
        status, body, headers = groq_too_large(
            model, limit, prompt + budget, self.state.faults.retry_after_s
        )
        return Reply.json(status, body, headers)

    def error(self, status: int, faults: Faults) -> Reply:
        headers = retry_after_headers(faults)
        if status == 429:
            headers += [
                (b"x-ratelimit-limit-requests", b"500"),
                (b"x-ratelimit-remaining-requests", b"0"),
                (b"x-ratelimit-reset-requests", b"12ms"),
            ]
        return Reply.json(status, error_body(status), headers)

    def success(self, incoming: Incoming) -> Reply:
        request = incoming.json
        if incoming.path.endswith("/embeddings"):
            return Reply.json(200, embeddings.openai_embeddings(request))
        model = request["model"]
        prompt = next(
            (
                str(m.get("content", ""))
                for m in reversed(request["messages"])
                if m.get("role") == "user"
            ),
            "",
        )
        text = reply_text(self.name, model, prompt)
        answer = _tool_or_structured(request, self.state.should_break_json())
        if answer is not None:
            return self._answer(request, *answer)
        limit = request.get("max_completion_tokens") or request.get("max_tokens")
        # A reasoning model thinks first, and the thinking counts against the limit.
        reasoning = REASONING_TOKENS if is_reasoning_model(model) else 0
        if isinstance(limit, int):
            reasoning = min(reasoning, limit)
        finish_reason = "stop"
        if isinstance(limit, int) and reasoning + estimate_tokens(text) > limit:
            kept = (limit - reasoning) * 4
            text, finish_reason = (text[:kept] if kept > 0 else ""), "length"
        prompt_tokens = sum(estimate_tokens(str(m.get("content", ""))) for m in request["messages"])
        completion_tokens = (estimate_tokens(text) if text else 0) + reasoning
        content: str | list[dict[str, Any]] = (
            magistral_content(text) if is_magistral(model) else text
        )
        return Reply.json(
            200,
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content, "refusal": None},
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
                        "reasoning_tokens": reasoning,
                        "audio_tokens": 0,
                        "accepted_prediction_tokens": 0,
                        "rejected_prediction_tokens": 0,
                    },
                },
                "service_tier": "default",
                "system_fingerprint": "fp_turnout_sim",
            },
        )

    def _answer(
        self, request: dict[str, Any], content: str | None, calls: list[dict[str, Any]] | None
    ) -> Reply:
        """A reply to tools or to a response_format (see tool_replies)."""
        model = request["model"]
        message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
        if calls:
            message["tool_calls"] = calls
        reasoning = REASONING_TOKENS if is_reasoning_model(model) else 0
        prompt_tokens = estimate_tokens(json.dumps(request["messages"]))
        completion_tokens = estimate_tokens(json.dumps(message)) + reasoning
        return Reply.json(
            200,
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "logprobs": None,
                        "finish_reason": "tool_calls" if calls else "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                    "completion_tokens_details": {
                        "reasoning_tokens": reasoning,
                        "audio_tokens": 0,
                        "accepted_prediction_tokens": 0,
                        "rejected_prediction_tokens": 0,
                    },
                },
                "service_tier": "default",
                "system_fingerprint": "fp_turnout_sim",
            },
        )

    def probe(self, incoming: Incoming) -> Reply:
        data = [
            {"id": m, "object": "model", "created": 1721172741, "owned_by": "system"}
            for m in self.models
        ]
        return Reply.json(200, {"object": "list", "data": data})

    def response_headers(
        self, incoming: Incoming, processing_s: float
    ) -> list[tuple[bytes, bytes]]:
        return [
            (b"x-request-id", f"req_{uuid.uuid4().hex}".encode()),
            (b"openai-processing-ms", str(int(processing_s * 1000)).encode()),
        ]
