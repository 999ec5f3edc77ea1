"""Vertex AI embeddings through ``:predict``, as google-genai's ``models.embed_content`` sends
it on Vertex for the text-embedding models (``text-embedding-005``,
``text-multilingual-embedding-002``): ``instances[]`` of ``content`` (and ``task_type``),
``parameters.outputDimensionality``; the reply's ``statistics.token_count`` per vector.

Gemini embedding models on Vertex go through ``embedContent`` / ``batchEmbedContents`` in the
SDK; turnout does not build those yet, and refuses such a route (the job moves on).
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
from routing.errors import InvalidResponse, Misconfigured
from workers.http import HttpCall, HttpReply
from workers.providers.embedding import checked_vectors, dict_or_fail, raise_error
from workers.providers.gemini import VertexAdapter
from workers.providers.gemini_embed import TASK_TYPES
from workers.providers.reading import read_json, token_count


class NotOnPredict(Misconfigured):
    """A Gemini embedding model on Vertex: not served by ``:predict``. The route is fine."""

    route_at_fault = False


def predict_body(request: EmbeddingRequest, dimensions: int | None) -> dict[str, Any]:
    instances = []
    for text in request.input:
        instance: dict[str, Any] = {"content": text}
        if request.input_type is not None:
            instance["task_type"] = TASK_TYPES[request.input_type]
        instances.append(instance)
    body: dict[str, Any] = {"instances": instances}
    if dimensions is not None:
        body["parameters"] = {"outputDimensionality": dimensions}
    return body


def parse_predict(raw: bytes, expected: int) -> ProviderEmbedding:
    data = dict_or_fail(read_json(raw), "vertex")
    predictions = data.get("predictions")
    if not isinstance(predictions, list) or not all(isinstance(p, dict) for p in predictions):
        raise InvalidResponse("vertex answered 200 without predictions", status_code=200)
    embeddings = [p.get("embeddings") or {} for p in predictions]
    vectors = checked_vectors([e.get("values") for e in embeddings], expected, "vertex")
    counts = [token_count((e.get("statistics") or {}).get("token_count")) for e in embeddings]
    usage = None if None in counts else embedding_usage(sum(c for c in counts if c is not None))
    return ProviderEmbedding(vectors=vectors, usage=usage)


class VertexEmbedder:
    def __init__(self, adapter: VertexAdapter) -> None:
        self.adapter = adapter
        self.url = adapter.url.removesuffix(":generateContent") + ":predict"

    def build_call(self, request: EmbeddingRequest) -> HttpCall:
        model = self.adapter.deployment.model
        if "gemini" in model.rsplit("/", 1)[-1]:
            raise NotOnPredict(
                f"{self.adapter.deployment.id}: {model} embeds through embedContent on Vertex, "
                "which turnout does not build yet; use it through the Gemini API"
            )
        body = predict_body(request, requested_dimensions(request, self.adapter.deployment))
        return HttpCall("POST", self.url, self.adapter._headers(), json.dumps(body).encode())

    def parse_reply(self, reply: HttpReply, request: EmbeddingRequest) -> ProviderEmbedding:
        if reply.status != 200:
            raise_error(self.adapter, reply)
        return parse_predict(reply.body, len(request.input))
