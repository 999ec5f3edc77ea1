"""A simulated Anthropic Messages API (../shared/providers.md §4, §19).

It answers the way api.anthropic.com does, bytes the official SDK parses: the message body with
its usage block, the ``{"type": "error", "error": {type, message}, "request_id"}`` envelope with
Anthropic's status codes (529 for overload), ``request-id``, ``retry-after`` and the
``anthropic-ratelimit-*`` headers on 429. Like the real API it refuses a request without
``anthropic-version`` or ``max_tokens``.

The key is accepted as ``x-api-key`` (the documented header) or as ``Authorization: Bearer``,
which is how anthropic SDK 2.x sends an API key; the real API must accept what its own SDK
sends. Paths live under ``/v1``.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from ops.simulator.base import (
    Endpoint,
    Incoming,
    ProviderSimulator,
    Reply,
    estimate_tokens,
    reply_text,
)
from ops.simulator.faults import Faults
from ops.simulator.model_refusals import claude_refusal
from ops.simulator.tool_replies import chosen_tool, instance_of, structured_text

#: 2023-06-01 is the documented version; 2026-10-21 is what anthropic SDK 2.x sends.
API_VERSIONS = frozenset({"2023-01-01", "2023-06-01", "2026-10-21"})
_ROLES = {"user", "assistant"}
_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "messages: text content blocks must be non-empty"),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your credit balance is too low to access the Anthropic API."),
    403: (
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
    ),
    404: ("not_found_error", "model: not found"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: (
        "rate_limit_error",
        "This request would exceed the rate limit for your organization of 50 requests per "
        "minute. Please reduce the prompt length or the maximum tokens requested, or try again "
        "later.",
    ),
    500: ("api_error", "Internal server error"),
    504: ("timeout_error", "Request timed out"),
    529: ("overloaded_error", "Overloaded"),
}


def error_reply(
    status: int, message: str | None = None, headers: list[tuple[bytes, bytes]] | None = None
) -> Reply:
    """Anthropic's error envelope; its request_id is also the ``request-id`` header."""
    kind, default = _ERRORS.get(
        status, ("api_error" if status >= 500 else "invalid_request_error", f"Error {status}")
    )
    request_id = _request_id()
    payload = {
        "type": "error",
        "error": {"type": kind, "message": message or default},
        "request_id": request_id,
    }
    return Reply.json(status, payload, [(b"request-id", request_id.encode()), *(headers or [])])


def _request_id() -> str:
    return f"req_{uuid.uuid4().hex[:24]}"


def _text_of(content: Any) -> str:
    """A message's text: the string itself or its text blocks joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(block.get("text", ""))
            for block in content
            if isinstance(block, dict) and block.get("type") == "text"
        )
    return ""


_TOOL_ID = re.compile(r"^[a-zA-Z0-9_-]+$")


def _tool_problem(request: dict[str, Any]) -> str | None:
    """The Messages API's refusals of a malformed tool conversation, in its words: an id not
    matching its pattern, a tool_use without a tool_result in the next turn, a tool_result
    answering no tool_use of the turn before, a forced tool that does not exist."""
    tools = request.get("tools") or []
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("input_schema"), dict):
            return f"tools.{index}.custom.input_schema: Field required"
    choice = request.get("tool_choice")
    names = {t.get("name") for t in tools}
    if (
        isinstance(choice, dict)
        and choice.get("type") == "tool"
        and choice.get("name") not in names
    ):
        return f"Tool '{choice.get('name')}' not found in provided tools"
    output = request.get("output_config")
    if isinstance(output, dict) and output.get("format") is not None:
        form = output["format"]
        if (
            not isinstance(form, dict)
            or form.get("type") != "json_schema"
            or not isinstance(form.get("schema"), dict)
        ):
            return "output_config.format: Input should be a valid json_schema format"
    pending: set[str] = set()
    messages = request["messages"]
    for index, message in enumerate(messages):
        blocks = message["content"] if isinstance(message["content"], list) else []
        answered = set()
        for number, block in enumerate(blocks):
            if not isinstance(block, dict):
                continue
            if block.get("type") == "tool_use" and not _TOOL_ID.match(str(block.get("id", ""))):
                return (
                    f"messages.{index}.content.{number}.tool_use.id: String should match "
                    "pattern '^[a-zA-Z0-9_-]+$'"
                )
            if block.get("type") == "tool_result":
                used = str(block.get("tool_use_id"))
                if used not in pending:
                    return (
                        f"messages.{index}.content.{number}: unexpected `tool_use_id` found in "
                        f"`tool_result` blocks: {used}. Each `tool_result` block must have a "
                        "corresponding `tool_use` block in the previous message."
                    )
                answered.add(used)
        if pending - answered:
            return (
                f"messages.{index - 1}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {', '.join(sorted(pending - answered))}. Each `tool_use` "
                "block must have a corresponding `tool_result` block in the next message."
            )
        pending = {
            str(b.get("id"))
            for b in blocks
            if isinstance(b, dict)
            and b.get("type") == "tool_use"
            and message["role"] == "assistant"
        }
    return None


def _tool_or_structured(request: dict[str, Any], broken_json: bool) -> list[dict[str, Any]] | None:
    """The content of a reply to tools (a tool_use block, or text quoting a tool's result) or
    to a JSON schema; None for a plain request."""
    last = request["messages"][-1]
    blocks = last["content"] if isinstance(last["content"], list) else []
    results = [b for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result"]
    tools = request.get("tools") or []
    choice = request.get("tool_choice") or {"type": "auto"}
    asks = any(isinstance(b, dict) and b.get("type") == "text" for b in blocks) or isinstance(
        last["content"], str
    )
    if results and not asks:
        said = "; ".join(_text_of(r.get("content")) or str(r.get("content")) for r in results)
        return [{"type": "text", "text": f"The tool answered: {said}"}]
    if tools and choice.get("type") != "none" and last["role"] == "user":
        named = choice.get("name") if choice.get("type") == "tool" else None
        name, schema = chosen_tool(
            [{"name": t["name"], "schema": t["input_schema"]} for t in tools], named
        )
        return [
            {
                "type": "tool_use",
                "id": f"toolu_{uuid.uuid4().hex[:24]}",
                "name": name,
                "input": instance_of(schema) or {},
            }
        ]
    output = request.get("output_config")
    if isinstance(output, dict) and isinstance(output.get("format"), dict):
        return [{"type": "text", "text": structured_text(output["format"]["schema"], broken_json)}]
    return None


class AnthropicSimulator(ProviderSimulator):
    """``api_key=None`` accepts any caller."""

    protocol = "anthropic"

    def match(self, incoming: Incoming) -> Endpoint | None:
        if incoming.method == "POST" and incoming.path == "/v1/messages":
            return "generate"
        if incoming.method == "GET" and incoming.path == "/v1/models":
            return "probe"
        return None

    def not_found(self, incoming: Incoming) -> Reply:
        return error_reply(404, "Not Found")

    def response_headers(
        self, incoming: Incoming, processing_s: float
    ) -> list[tuple[bytes, bytes]]:
        return []  # every reply built here carries its own request-id

    def authenticate(self, incoming: Incoming) -> Reply | None:
        if self.api_key is None:
            return None
        given = incoming.headers.get("x-api-key")
        bearer = incoming.headers.get("authorization", "")
        if given is None and bearer.lower().startswith("bearer "):
            given = bearer[7:].strip()
        if not given:
            return error_reply(401, "x-api-key header is required")
        if given != self.api_key:
            return error_reply(401, "invalid x-api-key")
        return None

    def _version_problem(self, incoming: Incoming) -> Reply | None:
        version = incoming.headers.get("anthropic-version")
        if version is None:
            return error_reply(400, "anthropic-version: header is required")
        if version not in API_VERSIONS:
            return error_reply(400, f"anthropic-version: invalid version {version!r}")
        return None

    def validate(self, incoming: Incoming) -> Reply | None:
        problem = self._version_problem(incoming)
        if problem is not None:
            return problem
        request = incoming.json
        if not isinstance(request, dict):
            return error_reply(400, "Request body must be a JSON object")
        if not isinstance(request.get("model"), str) or not request["model"]:
            return error_reply(400, "model: Field required")
        max_tokens = request.get("max_tokens")
        if max_tokens is None:
            return error_reply(400, "max_tokens: Field required")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 0:
            return error_reply(400, "max_tokens: Input should be a valid non-negative integer")
        messages = request.get("messages")
        if not isinstance(messages, list) or not messages:
            return error_reply(400, "messages: at least one message is required")
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in _ROLES:
                return error_reply(
                    400, f"messages.{index}.role: Input should be 'user' or 'assistant'"
                )
            if not isinstance(message.get("content"), str | list):
                return error_reply(400, f"messages.{index}.content: Field required")
        system = request.get("system")
        if system is not None and not isinstance(system, str | list):
            return error_reply(400, "system: Input should be a valid string or list")
        for name, high in (("temperature", 1.0), ("top_p", 1.0)):
            value = request.get(name)
            if value is not None and (not isinstance(value, int | float) or not 0 <= value <= high):
                return error_reply(400, f"{name}: Input should be between 0 and {high:g}")
        stops = request.get("stop_sequences")
        if stops is not None and not (
            isinstance(stops, list) and all(isinstance(s, str) and s for s in stops)
        ):
            return error_reply(400, "stop_sequences: Input should be a list of non-empty strings")
        problem_with_tools = _tool_problem(request)
        if problem_with_tools is not None:
            return error_reply(400, problem_with_tools)
        refused = claude_refusal(
            request["model"],
            {name: request.get(name) for name in ("temperature", "top_p", "top_k")},
            messages[-1].get("role"),
        )
        if refused is not None:
            return error_reply(400, refused)
        return None

    def error(self, status: int, faults: Faults) -> Reply:
        headers: list[tuple[bytes, bytes]] = []
        if faults.retry_after_s is not None:
            headers.append((b"retry-after", f"{faults.retry_after_s:g}".encode()))
        if status == 429:
            if faults.retry_after_s is None:  # the real API always says when to come back
                headers.append((b"retry-after", b"1"))
            headers += [
                (b"anthropic-ratelimit-requests-limit", b"50"),
                (b"anthropic-ratelimit-requests-remaining", b"0"),
                (b"anthropic-ratelimit-requests-reset", b"2026-11-20T00:00:01Z"),
            ]
        return error_reply(status, headers=headers)

    def malformed(self) -> Reply:
        return Reply(200, b'{"id": "msg_broken", "type": "message", "content": [')

    def success(self, incoming: Incoming) -> Reply:
        request = incoming.json
        model = request["model"]
        messages = request["messages"]
        prompt = next(
            (_text_of(m["content"]) for m in reversed(messages) if m["role"] == "user"), ""
        )
        text = reply_text(self.name, model, prompt)
        content = _tool_or_structured(request, self.state.should_break_json())
        if content is not None:
            return self._message(request, content)
        stop_reason, stop_sequence = "end_turn", None
        for stop in request.get("stop_sequences") or []:
            if stop in text:
                text, stop_reason, stop_sequence = text[: text.index(stop)], "stop_sequence", stop
        limit = request["max_tokens"]
        if estimate_tokens(text) > limit:
            text, stop_reason, stop_sequence = text[: limit * 4], "max_tokens", None
        system = _text_of(request.get("system"))
        input_tokens = sum(estimate_tokens(_text_of(m["content"])) for m in messages) + (
            estimate_tokens(system) if system else 0
        )
        payload = {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": text}] if text else [],
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
            "usage": {
                "input_tokens": input_tokens,
                "output_tokens": estimate_tokens(text) if text else 0,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "service_tier": "standard",
            },
        }
        headers = [
            (b"request-id", _request_id().encode()),
            (b"anthropic-ratelimit-requests-limit", b"50"),
            (b"anthropic-ratelimit-requests-remaining", b"49"),
        ]
        return Reply.json(200, payload, headers)

    def _message(self, request: dict[str, Any], content: list[dict[str, Any]]) -> Reply:
        """A reply of tool_use blocks, or of the structured text (see tool_replies)."""
        calls = any(block["type"] == "tool_use" for block in content)
        written = sum(estimate_tokens(json.dumps(block)) for block in content)
        input_tokens = sum(estimate_tokens(json.dumps(m["content"])) for m in request["messages"])
        payload = {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": request["model"],
            "content": content,
            "stop_reason": "tool_use" if calls else "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": input_tokens,
                "output_tokens": written,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "service_tier": "standard",
            },
        }
        return Reply.json(200, payload, [(b"request-id", _request_id().encode())])

    def probe(self, incoming: Incoming) -> Reply:
        problem = self._version_problem(incoming)
        if problem is not None:
            return problem
        try:
            limit = int(incoming.query.get("limit", "20"))
        except ValueError:
            return error_reply(400, "limit: Input should be a valid integer")
        if not 1 <= limit <= 1000:
            return error_reply(400, "limit: Input should be between 1 and 1000")
        data = [
            {
                "type": "model",
                "id": model,
                "display_name": model,
                "created_at": "2025-09-29T00:00:00Z",
                "lifecycle": "active",
            }
            for model in self.models[:limit]
        ]
        payload = {
            "data": data,
            "has_more": len(self.models) > limit,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }
        return Reply.json(200, payload, [(b"request-id", _request_id().encode())])
