"""One turn of a conversation, in the provider-neutral shape every adapter translates from:
its text (what every adapter reads), its ordered text and image parts when it has images, an
assistant turn's tool calls, a tool turn's answer to one of them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from routing.chat_parts import MAX_IMAGES, MAX_TOOLS, ContentPart, ImagePart, ToolCall, ToolCallId

Role = Literal["system", "user", "assistant", "tool"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Message(_Strict):
    """One turn. ``content`` is its text (every adapter reads it); ``parts`` keeps the ordered
    text and image parts when the turn has images; an assistant turn may carry ``tool_calls``
    (and no text), a ``tool`` turn answers one of them by ``tool_call_id``."""

    role: Role
    content: str = ""
    parts: list[ContentPart] | None = Field(default=None, min_length=1, max_length=MAX_IMAGES * 2)
    tool_calls: list[ToolCall] | None = Field(default=None, min_length=1, max_length=MAX_TOOLS)
    tool_call_id: ToolCallId | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_openai_shape(cls, data: Any) -> Any:
        """A message as OpenAI's SDK writes it: ``content`` null (an assistant turn of tool
        calls only) or a list of parts; the parts are kept only when an image is among them."""
        if not isinstance(data, dict):
            return data
        content = data.get("content")
        if content is None and "content" in data:
            return {**data, "content": ""}
        if isinstance(content, list) and data.get("parts") is None:
            texts = [
                p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"
            ]
            with_image = any(isinstance(p, dict) and p.get("type") != "text" for p in content)
            text = "\n".join(t for t in texts if isinstance(t, str))
            return {**data, "content": text, "parts": content if with_image else None}
        return data

    @field_validator("content")
    @classmethod
    def _not_blank(cls, content: str) -> str:
        if content and not content.strip():
            raise ValueError("message content is blank")
        return content

    @model_validator(mode="after")
    def _shape_of_its_role(self) -> Message:
        if self.parts is not None and self.role != "user":
            raise ValueError("image parts are accepted in user messages only")
        if self.parts is None and not self.content.strip() and not self.tool_calls:
            raise ValueError("message content is empty")
        if self.tool_calls is not None and self.role != "assistant":
            raise ValueError("tool_calls belong to assistant messages")
        if (self.role == "tool") != (self.tool_call_id is not None):
            raise ValueError("a tool message needs tool_call_id, and only a tool message has one")
        return self

    @property
    def images(self) -> list[ImagePart]:
        return [p for p in self.parts or () if isinstance(p, ImagePart)]


def check_tool_turns(messages: list[Message]) -> None:
    """Every ``tool`` message answers a tool call of the assistant turn before it (the tool
    messages after it): OpenAI refuses one that does not ("messages with role 'tool' must be a
    response to a preceeding message with 'tool_calls'"), and Anthropic needs the pairing to
    build its tool_result blocks."""
    open_calls: set[str] = set()
    for index, message in enumerate(messages):
        if message.role == "tool":
            if message.tool_call_id not in open_calls:
                raise ValueError(
                    f"messages.{index}: the tool message answers {message.tool_call_id!r}, "
                    "which no preceding assistant tool_calls has"
                )
            open_calls.discard(message.tool_call_id)
            continue
        open_calls = {call.id for call in message.tool_calls or ()}
