"""Bedrock embeddings through InvokeModel (``POST /model/{id}/invoke``, SigV4-signed as boto3's
``invoke_model`` signs it), in each model family's own body:

* Amazon Titan Text Embeddings (``amazon.titan-embed-text-v2:0``): one text per call,
  ``{"inputText", "dimensions", "normalize"}`` -> ``{"embedding", "inputTextTokenCount"}``. A
  job of several inputs is refused by the route (BadRequest would fail the job everywhere, so it
  is an UnsupportedInput: the job moves on to a route that takes lists);
* Cohere Embed on Bedrock (``cohere.embed-*``): ``{"texts", "input_type", "embedding_types"}``
  -> ``{"embeddings": {"float": [...]}}`` (or a bare list without embedding_types).
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
from workers.providers.bedrock import BedrockAdapter
from workers.providers.cohere_embed import DEFAULT_INPUT_TYPE
from workers.providers.embedding import checked_vectors, dict_or_fail, raise_error
from workers.providers.reading import read_json, sane_counts


class TitanTakesOneText(Misconfigured):
    """A Titan route got a job of several texts: the model embeds one per call. The route is
    fine (its breaker ignores this); the job moves on."""

    route_at_fault = False


def is_titan(model: str) -> bool:
    return "amazon.titan-embed" in model


def invoke_body(
    request: EmbeddingRequest, model: str, dimensions: int | None = None
) -> dict[str, Any]:
    if is_titan(model):
        body: dict[str, Any] = {"inputText": request.input[0]}
        if dimensions is not None:
            body["dimensions"] = dimensions
        return body
    cohere: dict[str, Any] = {
        "texts": request.input,
        "input_type": request.input_type or DEFAULT_INPUT_TYPE,
        "embedding_types": ["float"],
    }
    if dimensions is not None:
        cohere["output_dimension"] = dimensions
    return cohere


def parse_invoke(raw: bytes, model: str, expected: int) -> ProviderEmbedding:
    data = dict_or_fail(read_json(raw), "bedrock")
    if is_titan(model):
        counts = sane_counts(data, "inputTextTokenCount")
        return ProviderEmbedding(
            vectors=checked_vectors([data.get("embedding")], expected, "bedrock"),
            usage=embedding_usage(counts[0]) if counts else None,
        )
    embeddings = data.get("embeddings")
    floats = embeddings.get("float") if isinstance(embeddings, dict) else embeddings
    if not isinstance(floats, list):
        raise InvalidResponse("bedrock answered 200 without embeddings", status_code=200)
    return ProviderEmbedding(vectors=checked_vectors(floats, expected, "bedrock"), usage=None)


class BedrockEmbedder:
    def __init__(self, adapter: BedrockAdapter) -> None:
        self.adapter = adapter

    def build_call(self, request: EmbeddingRequest) -> HttpCall:
        model = self.adapter.deployment.model
        if is_titan(model) and len(request.input) > 1:
            raise TitanTakesOneText(
                f"{self.adapter.deployment.id}: {model} embeds one text per call; this job has "
                f"{len(request.input)}"
            )
        body = json.dumps(
            invoke_body(request, model, requested_dimensions(request, self.adapter.deployment))
        ).encode()
        return self.adapter.signed("POST", self.adapter.model_url("invoke"), body)

    def parse_reply(self, reply: HttpReply, request: EmbeddingRequest) -> ProviderEmbedding:
        if reply.status != 200:
            raise_error(self.adapter, reply)
        embedding = parse_invoke(reply.body, self.adapter.deployment.model, len(request.input))
        if embedding.usage is None:  # Cohere Embed's body has no count; Bedrock's header does
            count = token_count_header(reply.headers.get("x-amzn-bedrock-input-token-count"))
            if count is not None:
                return embedding.model_copy(update={"usage": embedding_usage(count)})
        return embedding


def token_count_header(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None
