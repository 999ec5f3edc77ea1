"""Cohere v2 ``POST /v2/embed``, as cohere's ``ClientV2.embed`` sends it: ``texts``, the
required ``input_type`` (``search_document`` when the caller names none: what a batch of
documents to index is), ``embedding_types: ["float"]``, ``output_dimension`` for embed-v4.
Tokens billed come in ``meta.billed_units.input_tokens``.
"""

from __future__ import annotations

import json
from typing import Any

from routing.embeddings import (
    EmbeddingRequest,
    ProviderEmbedding,
    embedding_usage,
    requested_dimensions,
)
from routing.errors import InvalidResponse
from workers.http import HttpCall, HttpReply
from workers.providers.cohere import CohereAdapter
from workers.providers.embedding import checked_vectors, dict_or_fail, raise_error
from workers.providers.reading import read_json, sane_counts

DEFAULT_INPUT_TYPE = "search_document"


def embed_body(
    request: EmbeddingRequest, model: str, dimensions: int | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "texts": request.input,
        "model": model,
        "input_type": request.input_type or DEFAULT_INPUT_TYPE,
        "embedding_types": ["float"],
    }
    if dimensions is not None:
        body["output_dimension"] = dimensions
    return body


def parse_embed(raw: bytes, expected: int, provider: str) -> ProviderEmbedding:
    """``embeddings`` is keyed by type (``{"float": [...]}``) when embedding_types was sent."""
    data = dict_or_fail(read_json(raw), provider)
    embeddings = data.get("embeddings")
    floats = embeddings.get("float") if isinstance(embeddings, dict) else embeddings
    if not isinstance(floats, list):
        raise InvalidResponse(f"{provider} answered 200 without float embeddings", status_code=200)
    meta = data.get("meta")
    billed = meta.get("billed_units") if isinstance(meta, dict) else None
    counts = sane_counts(billed, "input_tokens") if isinstance(billed, dict) else None
    return ProviderEmbedding(
        vectors=checked_vectors(floats, expected, provider),
        usage=embedding_usage(counts[0]) if counts else None,
    )


class CohereEmbedder:
    def __init__(self, adapter: CohereAdapter) -> None:
        self.adapter = adapter

    def build_call(self, request: EmbeddingRequest) -> HttpCall:
        body = embed_body(
            request,
            self.adapter.deployment.model,
            requested_dimensions(request, self.adapter.deployment),
        )
        return HttpCall(
            "POST",
            f"{self.adapter.base_url}/v2/embed",
            self.adapter._headers(with_body=True),
            json.dumps(body).encode(),
        )

    def parse_reply(self, reply: HttpReply, request: EmbeddingRequest) -> ProviderEmbedding:
        if reply.status != 200:
            raise_error(self.adapter, reply)
        return parse_embed(reply.body, len(request.input), self.adapter.deployment.provider)
