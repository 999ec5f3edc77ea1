"""The parts of a chat request beyond text: tools and tool calls, structured output, images.

Their shapes are OpenAI's chat-completions shapes (the openai SDK's
``completion_create_params.py``, ``chat_completion_message_tool_call_param.py``,
``chat_completion_content_part_image_param.py``), because that is what callers send and what
the job record stores; adapters translate them to their protocols. Checked where they enter
(pydantic, at the producer), so a bad schema or image never reaches a worker:

* a tool's ``parameters`` and a ``json_schema``'s ``schema`` must be valid JSON Schema (the
  ``jsonschema`` library's ``check_schema`` against the draft the schema names, 2020-12 by
  default): a schema every provider would refuse fails at submit, not after a queue wait;
* an image is an ``https://`` URL or a ``data:image/...;base64,`` URL of at most
  ``MAX_IMAGE_DATA_CHARS`` characters (Anthropic's 5 MB limit applies to the base64 text, the
  strictest of the targets), and a request carries at most ``MAX_IMAGES`` of them: the job
  record stays bounded.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from functools import lru_cache
from typing import Annotated, Any, Literal

from jsonschema import exceptions as schema_errors
from jsonschema import validators
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

#: Images per request, and characters of one image's data URL (5 MiB: Anthropic's per-image
#: limit on the base64 text; OpenAI's is larger).
MAX_IMAGES = 20
MAX_IMAGE_DATA_CHARS = 5 * 1024 * 1024
MAX_TOOLS = 128  # OpenAI's limit on ``tools``
#: Characters of one JSON schema (a tool's parameters, a response format's schema), serialised.
MAX_SCHEMA_CHARS = 100_000

#: OpenAI's function and schema names: "a-z, A-Z, 0-9, or contain underscores and dashes, with
#: a maximum length of 64" (the SDK's FunctionDefinition.name).
FunctionName = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z0-9_-]{1,64}$")]
#: A tool call's id: opaque, bounded.
ToolCallId = Annotated[str, StringConstraints(min_length=1, max_length=256)]
MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
_DATA_URL = re.compile(r"^data:(?P<media>image/[a-z0-9.+-]+);base64,(?P<data>.*)$", re.DOTALL)


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def check_json_schema(schema: dict[str, Any], where: str) -> dict[str, Any]:
    """``schema`` itself, when it is valid JSON Schema; ValueError naming what is wrong."""
    try:
        text = json.dumps(schema, sort_keys=True)
    except (TypeError, ValueError):
        raise ValueError(f"{where} is not JSON") from None
    if len(text) > MAX_SCHEMA_CHARS:
        raise ValueError(f"{where} is larger than {MAX_SCHEMA_CHARS} characters")
    problem = _schema_problem(text)
    if problem is not None:
        raise ValueError(f"{where} is not valid JSON Schema at {problem}")
    return schema


@lru_cache(maxsize=1024)
def _schema_problem(text: str) -> str | None:
    """Why the schema (as sorted JSON text) is not valid JSON Schema, or None. Cached: checking
    a schema against its metaschema takes about a millisecond, and a batch or an agent sends
    the same few schemas with every job (each validated at submit and again by the worker)."""
    schema = json.loads(text)
    validator = validators.validator_for(schema, default=validators.Draft202012Validator)
    try:
        validator.check_schema(schema)
    except schema_errors.SchemaError as exc:
        path = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        return f"{path}: {exc.message}"
    return None


class FunctionDefinition(_Part):
    name: FunctionName
    description: str | None = Field(default=None, max_length=10_000)
    #: JSON Schema of the arguments; None: the function takes none.
    parameters: dict[str, Any] | None = None
    strict: bool | None = None

    @field_validator("parameters")
    @classmethod
    def _valid_schema(cls, parameters: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if parameters is None else check_json_schema(parameters, "parameters")


class Tool(_Part):
    type: Literal["function"] = "function"
    function: FunctionDefinition


class NamedFunction(_Part):
    name: FunctionName


class NamedToolChoice(_Part):
    type: Literal["function"] = "function"
    function: NamedFunction


ToolChoice = Literal["auto", "none", "required"] | NamedToolChoice


class FunctionCall(_Part):
    name: FunctionName
    #: The arguments as the model wrote them: JSON text, not checked (models do get it wrong,
    #: and the caller's tool decides).
    arguments: str = Field(max_length=1_000_000)


class ToolCall(_Part):
    id: ToolCallId
    type: Literal["function"] = "function"
    function: FunctionCall


class JsonSchemaFormat(_Part):
    name: FunctionName
    description: str | None = None
    #: The schema; ``schema`` on the wire (the attribute is named apart from pydantic's own).
    json_schema: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None

    @field_validator("json_schema")
    @classmethod
    def _valid_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        return check_json_schema(schema, "json_schema.schema")


class ResponseFormat(_Part):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_with_its_type(self) -> ResponseFormat:
        if (self.type == "json_schema") != (self.json_schema is not None):
            raise ValueError("json_schema is required with type json_schema, and only then")
        return self


class TextPart(_Part):
    type: Literal["text"] = "text"
    text: Annotated[str, StringConstraints(min_length=1, pattern=r"\S")]


class ImageUrl(_Part):
    url: str
    detail: Literal["auto", "low", "high"] | None = None

    @field_validator("url")
    @classmethod
    def _https_or_data(cls, url: str) -> str:
        if url.startswith("data:"):
            image_data(url)  # raises on a malformed or oversized one
            return url
        if not url.startswith("https://") or len(url) > 8192:
            raise ValueError(
                "image_url.url must be an https:// URL (at most 8192 characters) or a "
                "data:image/...;base64, URL"
            )
        return url


class ImagePart(_Part):
    type: Literal["image_url"] = "image_url"
    image_url: ImageUrl


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


def image_data(url: str) -> tuple[str, str]:
    """(media type, base64 data) of a ``data:`` image URL; ValueError when it is not one of
    the image types every target takes, is not base64, or is over the size limit."""
    if len(url) > MAX_IMAGE_DATA_CHARS:
        raise ValueError(
            f"the image is {len(url)} characters of data URL, over the limit of "
            f"{MAX_IMAGE_DATA_CHARS} (5 MiB)"
        )
    found = _DATA_URL.match(url)
    if found is None:
        raise ValueError("a data: image URL must be data:image/<type>;base64,<data>")
    media = found["media"]
    if media not in MEDIA_TYPES:
        raise ValueError(f"image type {media} is not one of {', '.join(MEDIA_TYPES)}")
    data = found["data"]
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the data: image URL's data is not valid base64") from None
    return media, data
