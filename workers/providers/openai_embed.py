"""``POST /embeddings`` on OpenAI and every provider that speaks its protocol (vLLM, Together,
Mistral, ...), and on Azure OpenAI, as the official ``openai`` SDK sends it.

The SDK asks OpenAI and Azure for ``encoding_format: base64`` when its caller names none and
decodes the little-endian float32s itself (openai/lib/_parsing/_embeddings.py): a quarter of the
bytes of the JSON floats. turnout does the same there; the OpenAI-compatible servers get
``float``, which all of them speak (not all of them base64). Either reply is read.
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
from workers.providers.azure import AzureOpenAIAdapter
from workers.providers.embedding import checked_vectors, dict_or_fail, raise_error
from workers.providers.openai_compat import OpenAICompatibleAdapter
from workers.providers.reading import read_json, sane_counts

#: Providers whose API decodes base64 the way the SDK's default asks.
_BASE64_PROVIDERS = frozenset({"openai", "azure"})


def embeddings_body(
    request: EmbeddingRequest, model: str, dimensions: int | None = None, *, base64: bool
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "input": request.input,
        "model": model,
        "encoding_format": "base64" if base64 else "float",
    }
    if dimensions is not None:
        body["dimensions"] = dimensions
    if request.user is not None:
        body["user"] = request.user
    return body


def parse_embeddings(raw: bytes, expected: int, provider: str) -> ProviderEmbedding:
    data = dict_or_fail(read_json(raw), provider)
    items = data.get("data")
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise InvalidResponse(f"{provider} answered 200 without a data list", status_code=200)
    # In input order: ``index`` says which input each vector is for.
    ordered = sorted(items, key=lambda item: item.get("index", 0))
    vectors = checked_vectors([item.get("embedding") for item in ordered], expected, provider)
    usage = data.get("usage")
    counts = sane_counts(usage, "prompt_tokens") if isinstance(usage, dict) else None
    model = data.get("model")
    return ProviderEmbedding(
        vectors=vectors,
        usage=embedding_usage(counts[0]) if counts else None,
        model=model if isinstance(model, str) else None,
    )


class _Embedder:
    def __init__(self, adapter: OpenAICompatibleAdapter | AzureOpenAIAdapter, url: str) -> None:
        self.adapter = adapter
        self.url = url

    def build_call(self, request: EmbeddingRequest) -> HttpCall:
        deployment = self.adapter.deployment
        body = embeddings_body(
            request,
            deployment.model,
            requested_dimensions(request, deployment),
            base64=deployment.provider in _BASE64_PROVIDERS,
        )
        headers = self.adapter._headers()  # the chat call's: its key, its extra headers
        return HttpCall("POST", self.url, headers, json.dumps(body).encode())

    def parse_reply(self, reply: HttpReply, request: EmbeddingRequest) -> ProviderEmbedding:
        if reply.status != 200:
            raise_error(self.adapter, reply)
        return parse_embeddings(reply.body, len(request.input), self.adapter.deployment.provider)


class OpenAIEmbedder(_Embedder):
    def __init__(self, adapter: OpenAICompatibleAdapter) -> None:
        super().__init__(adapter, f"{adapter.base_url}/embeddings")


class AzureEmbedder(_Embedder):
    """``/openai/v1/embeddings``, or the deployment's ``/embeddings?api-version=``: the chat
    URL with its last path segment changed, as the SDK's AzureOpenAI client builds both."""

    def __init__(self, adapter: AzureOpenAIAdapter) -> None:
        path, _, query = adapter.url.partition("?")
        url = path.removesuffix("/chat/completions") + "/embeddings"
        super().__init__(adapter, f"{url}?{query}" if query else url)
