"""OpenAI-shaped tools, tool calls, images, structured output and reasoning effort, as the
Anthropic Messages API takes them (the anthropic SDK's ``ToolParam``, ``ToolUseBlockParam``,
``ToolResultBlockParam``, ``ImageBlockParam``, ``OutputConfigParam``, ``ThinkingConfigParam``).

Decisions:

* Tool call ids pass through unchanged when they match Anthropic's ``^[a-zA-Z0-9_-]+$`` (OpenAI's
  ``call_...`` do, and Anthropic's own ``toolu_...`` come back as they are); any other id is
  mapped to one that does, the same way every time (its invalid characters replaced and a hash
  of the original appended), so a ``tool_use`` and its ``tool_result`` keep matching, and a
  conversation that moves between protocols mid-way keeps its pairs.
* ``tool_choice``: auto -> ``auto``, required -> ``any``, a named function -> ``tool``, none ->
  ``none``; ``parallel_tool_calls: false`` -> ``disable_parallel_tool_use``.
* ``response_format`` json_schema -> ``output_config.format`` (structured outputs, GA in the
  Messages API: the SDK's ``JSONOutputFormatParam``); ``json_object`` has no equivalent and is
  not sent (the worker checks only json_schema replies).
* ``reasoning_effort`` -> ``thinking: {type: enabled, budget_tokens}`` (minimal and low 1024,
  the API's minimum; medium 4096; high 16384; xhigh 24576; max 32768; none: no thinking),
  with ``max_tokens`` raised by the budget (thinking counts against it), and no
  ``temperature``/``top_p`` (refused with thinking).
* ``seed``, the penalties and ``logprobs`` have no Messages API field and are not sent.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from routing.chat_parts import ImagePart, TextPart, ToolCall, image_data
from routing.errors import InvalidResponse
from routing.models import CompletionRequest, Message

_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
_NOT_ID = re.compile(r"[^a-zA-Z0-9_-]")
THINKING_BUDGETS = {
    "minimal": 1024,
    "low": 1024,
    "medium": 4096,
    "high": 16384,
    "xhigh": 24576,
    "max": 32768,
}


def anthropic_id(call_id: str) -> str:
    """A tool call id as Anthropic accepts it (see the module docstring)."""
    if _ID.match(call_id) and len(call_id) <= 200:
        return call_id
    digest = hashlib.sha256(call_id.encode()).hexdigest()[:12]
    return f"{_NOT_ID.sub('_', call_id)[:180]}_{digest}"


def content_blocks(message: Message) -> list[dict[str, Any]]:
    """The blocks of one turn: text, images, tool_use (assistant) or tool_result (tool)."""
    if message.role == "tool":
        assert message.tool_call_id is not None
        return [
            {
                "type": "tool_result",
                "tool_use_id": anthropic_id(message.tool_call_id),
                "content": message.content,
            }
        ]
    blocks: list[dict[str, Any]] = []
    if message.parts is not None:
        for part in message.parts:
            if isinstance(part, TextPart):
                blocks.append({"type": "text", "text": part.text})
            elif isinstance(part, ImagePart):
                blocks.append({"type": "image", "source": _image_source(part.image_url.url)})
    elif message.content:
        blocks.append({"type": "text", "text": message.content})
    for call in message.tool_calls or ():
        blocks.append(
            {
                "type": "tool_use",
                "id": anthropic_id(call.id),
                "name": call.function.name,
                "input": _arguments(call.function.arguments),
            }
        )
    return blocks


def _image_source(url: str) -> dict[str, Any]:
    if url.startswith("data:"):
        media, data = image_data(url)
        return {"type": "base64", "media_type": media, "data": data}
    return {"type": "url", "url": url}


def _arguments(arguments: str) -> dict[str, Any]:
    """A tool call's arguments as Anthropic's ``input`` object. Arguments an OpenAI model wrote
    that are not a JSON object are kept under ``arguments`` rather than lost."""
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return {"arguments": arguments}
    return value if isinstance(value, dict) else {"arguments": value}


def tool_fields(request: CompletionRequest) -> dict[str, Any]:
    """``tools`` and ``tool_choice`` of the body (empty without tools)."""
    fields: dict[str, Any] = {}
    if request.tools:
        tools = []
        for tool in request.tools:
            function = tool.function
            entry: dict[str, Any] = {
                "name": function.name,
                "input_schema": function.parameters or {"type": "object", "properties": {}},
            }
            if function.description:
                entry["description"] = function.description
            if function.strict is not None:
                entry["strict"] = function.strict
            tools.append(entry)
        fields["tools"] = tools
    choice = request.tool_choice
    wire: dict[str, Any] | None = None
    if choice == "auto":
        wire = {"type": "auto"}
    elif choice == "required":
        wire = {"type": "any"}
    elif choice == "none":
        wire = {"type": "none"}
    elif choice is not None and not isinstance(choice, str):
        wire = {"type": "tool", "name": choice.function.name}
    if request.parallel_tool_calls is False and request.tools:
        wire = wire or {"type": "auto"}
        if wire["type"] != "none":
            wire["disable_parallel_tool_use"] = True
    if wire is not None and (request.tools or wire["type"] == "none"):
        fields["tool_choice"] = wire
    return fields


def output_fields(request: CompletionRequest) -> dict[str, Any]:
    schema = request.output_schema
    if schema is None:
        return {}
    return {"output_config": {"format": {"type": "json_schema", "schema": schema}}}


def thinking_budget(request: CompletionRequest) -> int | None:
    effort = request.reasoning_effort
    return None if effort in (None, "none") else THINKING_BUDGETS[effort]


def reply_tool_calls(content: list[Any]) -> list[ToolCall] | None:
    """The ``tool_use`` blocks of a reply as OpenAI-shaped tool calls (ids as Anthropic gave
    them: they match every protocol's rules)."""
    calls = []
    for block in content:
        if not isinstance(block, dict) or block.get("type") != "tool_use":
            continue
        call_id, name, arguments = block.get("id"), block.get("name"), block.get("input")
        if (
            not isinstance(call_id, str)
            or not isinstance(name, str)
            or not isinstance(arguments, dict)
        ):
            raise InvalidResponse("200 message with a malformed tool_use block", status_code=200)
        calls.append(
            ToolCall.model_validate(
                {"id": call_id, "function": {"name": name, "arguments": json.dumps(arguments)}}
            )
        )
    return calls or None
