"""Gemini API embeddings: ``models/{model}:batchEmbedContents``, as google-genai's
``models.embed_content`` sends it to the Gemini Developer API (one request per text, each naming
the model; ``taskType`` and ``outputDimensionality`` per request). The reply has no token count,
so an embeddings job on Gemini records no usage or cost (the API reports none).
"""

from __future__ import annotations

import json
from typing import Any

from routing.embeddings import EmbeddingRequest, InputType, ProviderEmbedding, requested_dimensions
from routing.errors import InvalidResponse
from workers.http import HttpCall, HttpReply
from workers.providers.embedding import checked_vectors, dict_or_fail, raise_error
from workers.providers.gemini import GeminiAdapter
from workers.providers.reading import read_json

#: turnout's input types as the API's TaskType names them.
TASK_TYPES: dict[InputType, str] = {
    "search_document": "RETRIEVAL_DOCUMENT",
    "search_query": "RETRIEVAL_QUERY",
    "classification": "CLASSIFICATION",
    "clustering": "CLUSTERING",
}


def model_name(model: str) -> str:
    return model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"


def batch_embed_body(
    request: EmbeddingRequest, model: str, dimensions: int | None = None
) -> dict[str, Any]:
    requests = []
    for text in request.input:
        entry: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "user"}}
        if request.input_type is not None:
            entry["taskType"] = TASK_TYPES[request.input_type]
        if dimensions is not None:
            entry["outputDimensionality"] = dimensions
        entry["model"] = model_name(model)
        requests.append(entry)
    return {"requests": requests}


def parse_batch_embed(raw: bytes, expected: int, provider: str) -> ProviderEmbedding:
    data = dict_or_fail(read_json(raw), provider)
    items = data.get("embeddings")
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise InvalidResponse(f"{provider} answered 200 without embeddings", status_code=200)
    vectors = checked_vectors([item.get("values") for item in items], expected, provider)
    return ProviderEmbedding(vectors=vectors, usage=None)


class GeminiEmbedder:
    def __init__(self, adapter: GeminiAdapter) -> None:
        self.adapter = adapter
        self.url = f"{adapter.base_url}/{model_name(adapter.deployment.model)}:batchEmbedContents"

    def build_call(self, request: EmbeddingRequest) -> HttpCall:
        headers = {"content-type": "application/json", **self.adapter._headers()}
        body = batch_embed_body(
            request,
            self.adapter.deployment.model,
            requested_dimensions(request, self.adapter.deployment),
        )
        return HttpCall("POST", self.url, headers, json.dumps(body).encode())

    def parse_reply(self, reply: HttpReply, request: EmbeddingRequest) -> ProviderEmbedding:
        if reply.status != 200:
            raise_error(self.adapter, reply)
        return parse_batch_embed(reply.body, len(request.input), self.adapter.deployment.provider)
