"""Ollama's ``POST /api/embed`` (the batch endpoint; ``/api/embeddings`` is its deprecated
one-text predecessor): ``input`` as a list, ``dimensions`` for models that truncate. The reply's
``prompt_eval_count`` is the tokens read."""

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
from workers.providers.embedding import checked_vectors, dict_or_fail, raise_error
from workers.providers.ollama import OllamaAdapter
from workers.providers.reading import read_json, sane_counts


def embed_body(
    request: EmbeddingRequest, model: str, dimensions: int | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "input": request.input}
    if dimensions is not None:
        body["dimensions"] = dimensions
    return body


def parse_embed(raw: bytes, expected: int, provider: str) -> ProviderEmbedding:
    data = dict_or_fail(read_json(raw), provider)
    embeddings = data.get("embeddings")
    if not isinstance(embeddings, list):
        raise InvalidResponse(f"{provider} answered 200 without embeddings", status_code=200)
    counts = sane_counts(data, "prompt_eval_count")
    model = data.get("model")
    return ProviderEmbedding(
        vectors=checked_vectors(embeddings, expected, provider),
        usage=embedding_usage(counts[0]) if counts else None,
        model=model if isinstance(model, str) else None,
    )


class OllamaEmbedder:
    def __init__(self, adapter: OllamaAdapter) -> None:
        self.adapter = adapter

    def build_call(self, request: EmbeddingRequest) -> HttpCall:
        body = embed_body(
            request,
            self.adapter.deployment.model,
            requested_dimensions(request, self.adapter.deployment),
        )
        return HttpCall(
            "POST",
            f"{self.adapter.base_url}/api/embed",
            self.adapter._headers(with_body=True),
            json.dumps(body).encode(),
        )

    def parse_reply(self, reply: HttpReply, request: EmbeddingRequest) -> ProviderEmbedding:
        if reply.status != 200:
            raise_error(self.adapter, reply)
        return parse_embed(reply.body, len(request.input), self.adapter.deployment.provider)
