"""The chat-completions request body, and the tool calls of a reply, in OpenAI's own shapes.

turnout's request model keeps OpenAI's shapes (routing.chat_parts), so for OpenAI, Azure and
every server speaking the protocol they pass through as the openai SDK sends them
(``completion_create_params.py``): a user turn with images as a list of ``text`` and
``image_url`` parts, an assistant turn's ``tool_calls`` with ``content`` null when it has no
text, a ``tool`` turn's ``tool_call_id``; ``tools``, ``tool_choice``, ``response_format``
(``json_schema.schema``), ``seed``, the penalties, ``logprobs``/``top_logprobs``,
``reasoning_effort`` and ``user`` as they are. A deployment's ``extra_body`` is merged in last,
at the top level, as the SDK's ``extra_body`` is.

One translation: OpenAI refuses a tool call id longer than 40 characters ("Invalid
'messages[2].tool_calls[0].id': string too long. Expected a string with maximum length 40",
``string_above_max_length``), which ids made by other providers or frameworks can be. Such an
id is shortened the same way in the call and in its tool message (its head and a hash of the
whole), so a conversation that comes from another protocol keeps its pairs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from routing.chat_parts import ToolCall
from routing.errors import InvalidResponse
from routing.models import CompletionRequest, Message

#: Request fields sent as they are when set, in the SDK's names.
_PASSED = (
    "parallel_tool_calls",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logprobs",
    "top_logprobs",
    "reasoning_effort",
    "user",
)


def chat_body(
    request: CompletionRequest,
    model: str,
    max_tokens_field: str = "max_tokens",
    *,
    extra_body: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "messages": [wire_message(m) for m in request.messages],
    }
    if request.max_tokens is not None:
        body[max_tokens_field] = request.max_tokens
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop:
        body["stop"] = list(request.stop)
    if request.tools:
        body["tools"] = [
            tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in request.tools
        ]
    if request.tool_choice is not None:
        choice = request.tool_choice
        body["tool_choice"] = choice if isinstance(choice, str) else choice.model_dump(mode="json")
    if request.response_format is not None:
        body["response_format"] = request.response_format.model_dump(
            mode="json", by_alias=True, exclude_none=True
        )
    for name in _PASSED:
        value = getattr(request, name)
        if value is not None:
            body[name] = value
    if extra_body:
        body.update(extra_body)
    return body


#: OpenAI's limit on a tool call id.
MAX_TOOL_CALL_ID = 40


def openai_id(call_id: str) -> str:
    """A tool call id OpenAI accepts (see the module docstring)."""
    if len(call_id) <= MAX_TOOL_CALL_ID:
        return call_id
    digest = hashlib.sha256(call_id.encode()).hexdigest()[:12]
    return f"{call_id[: MAX_TOOL_CALL_ID - 13]}_{digest}"


def wire_message(message: Message) -> dict[str, Any]:
    wire: dict[str, Any] = {"role": message.role}
    if message.parts is not None:
        wire["content"] = [
            part.model_dump(mode="json", exclude_none=True) for part in message.parts
        ]
    elif message.tool_calls and not message.content:
        wire["content"] = None
    else:
        wire["content"] = message.content
    if message.tool_calls:
        wire["tool_calls"] = [
            {**call.model_dump(mode="json"), "id": openai_id(call.id)}
            for call in message.tool_calls
        ]
    if message.tool_call_id is not None:
        wire["tool_call_id"] = openai_id(message.tool_call_id)
    return wire


def reply_tool_calls(message: Mapping[str, Any]) -> list[ToolCall] | None:
    """``choices[0].message.tool_calls`` as ToolCalls; InvalidResponse when they are not what
    the protocol promises (an id, a function name and its arguments as a string)."""
    raw = message.get("tool_calls")
    if not raw:
        return None
    if not isinstance(raw, list):
        raise InvalidResponse("choices[0].message.tool_calls is not a list", status_code=200)
    try:
        return [ToolCall.model_validate(call) for call in raw]
    except ValidationError as exc:
        raise InvalidResponse(
            f"a tool call of choices[0].message is malformed: {exc.errors()[0]['msg']}",
            status_code=200,
        ) from None
