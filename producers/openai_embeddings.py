"""OpenAI's embeddings shapes, for ``turnout serve`` and ``turnout batch`` alike: the body of
``POST /v1/embeddings`` (and of a batch line whose ``url`` is ``/v1/embeddings``) and the
``list`` of ``embedding`` objects a succeeded embeddings job answers with."""

from __future__ import annotations

import base64
import struct
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from producers.openai_format import turnout_facts
from routing.embeddings import MAX_DIMENSIONS, MAX_INPUTS, EmbeddingRequest, InputType
from routing.errors import InvalidRequest
from routing.models import CompletionResult

EMBEDDINGS_URL = "/v1/embeddings"


class EmbeddingsBody(BaseModel):
    """The body of ``POST /v1/embeddings`` (OpenAI's fields; ``input_type`` is turnout's, for
    Cohere and Gemini, which embed documents and queries differently)."""

    model_config = ConfigDict(extra="forbid")

    model: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    input: str | Annotated[list[str], Field(min_length=1, max_length=MAX_INPUTS)] | list[Any]
    dimensions: int | None = Field(default=None, gt=0, le=MAX_DIMENSIONS)
    encoding_format: Literal["float", "base64"] = "float"
    user: Annotated[str, StringConstraints(max_length=256)] | None = None
    input_type: InputType | None = None

    def texts(self) -> list[str]:
        if isinstance(self.input, str):
            return [self.input]
        if all(isinstance(text, str) for text in self.input):
            return list(self.input)
        raise InvalidRequest(
            "input: token arrays are not supported (turnout's targets do not share a "
            "tokenizer); send the text",
            param="input",
        )

    def to_embedding_request(self, idempotency_key: str | None = None) -> EmbeddingRequest:
        return EmbeddingRequest(
            input=self.texts(),
            dimensions=self.dimensions,
            input_type=self.input_type,
            user=self.user,
            idempotency_key=idempotency_key,
        )


def embeddings_answer(result: CompletionResult, encoding: str = "float") -> dict[str, Any]:
    """A succeeded embeddings job as OpenAI's ``list`` of ``embedding`` objects."""
    vectors = result.embeddings or []
    tokens = result.usage.prompt_tokens if result.usage else 0
    return {
        "object": "list",
        "data": [
            {
                "object": "embedding",
                "index": index,
                "embedding": _encoded(vector, encoding),
            }
            for index, vector in enumerate(vectors)
        ],
        "model": result.model or result.deployment or "",
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        "turnout": turnout_facts(result),
    }


def _encoded(vector: Sequence[float], encoding: str) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return list(vector)
