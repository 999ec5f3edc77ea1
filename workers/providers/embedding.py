"""Embeddings on each wire protocol: which embedder speaks it, and what they all share.

An embedder wraps the deployment's chat adapter (``workers.providers.registry``): the same base
URL, the same credentials and headers, the same error classification (a non-2xx reply is read by
the adapter's own ``parse_reply``, which raises the ProviderError of its class), so an embeddings
job gets the breaker, retries and failover a completion gets. Embedders do no I/O.
"""

from __future__ import annotations

import base64
import importlib
import math
import struct
from collections.abc import Sequence
from typing import Any, Protocol, cast

from routing.catalog import Protocol as WireProtocol
from routing.embeddings import EmbeddingRequest, ProviderEmbedding
from routing.errors import InvalidResponse, Misconfigured
from workers.http import HttpCall, HttpReply
from workers.providers.base import ProviderAdapter
from workers.providers.reading import snippet


class Embedder(Protocol):
    def build_call(self, request: EmbeddingRequest) -> HttpCall:
        """The provider's embeddings request, credentials included."""
        ...

    def parse_reply(self, reply: HttpReply, request: EmbeddingRequest) -> ProviderEmbedding:
        """The vectors of ``request``'s inputs, in order; raises the ProviderError of the
        reply's class."""
        ...


#: protocol -> "module:callable(adapter) -> Embedder"
EMBEDDERS: dict[WireProtocol, str] = {
    "openai": "workers.providers.openai_embed:OpenAIEmbedder",
    "azure": "workers.providers.openai_embed:AzureEmbedder",
    "gemini": "workers.providers.gemini_embed:GeminiEmbedder",
    "vertex": "workers.providers.vertex_embed:VertexEmbedder",
    "cohere": "workers.providers.cohere_embed:CohereEmbedder",
    "ollama": "workers.providers.ollama_embed:OllamaEmbedder",
    "bedrock": "workers.providers.bedrock_embed:BedrockEmbedder",
}


class NoEmbeddings(Misconfigured):
    """The deployment's protocol has no embeddings in turnout: a policy naming a chat-only
    provider for an embeddings job. Not the route's fault (its chat calls are fine), so its
    breaker ignores it; the job moves on to the next target."""

    route_at_fault = False


def embedder_for(adapter: ProviderAdapter) -> Embedder | None:
    """The embedder for the adapter's protocol (None: turnout embeds nothing on it)."""
    target = EMBEDDERS.get(adapter.deployment.wire_protocol)
    if target is None:
        return None
    module_name, _, attribute = target.partition(":")
    factory = getattr(importlib.import_module(module_name), attribute)
    return cast(Embedder, factory(adapter))


def raise_error(adapter: ProviderAdapter, reply: HttpReply) -> None:
    """Raise the error a non-2xx reply means, as the adapter classifies it for completions."""
    adapter.parse_reply(reply)  # raises for every non-2xx status
    raise InvalidResponse(
        f"{reply.status} from {adapter.deployment.provider}: {snippet(reply.body)}",
        status_code=reply.status,
    )


def checked_vectors(raw: Sequence[Any], expected: int, provider: str) -> list[list[float]]:
    """The vectors as floats, one per input: anything else is the provider's fault (a vector
    missing would put every later vector against the wrong text)."""
    if len(raw) != expected:
        raise InvalidResponse(
            f"{provider} answered {len(raw)} vectors for {expected} inputs", status_code=200
        )
    vectors: list[list[float]] = []
    for item in raw:
        if isinstance(item, str):
            vectors.append(decode_base64_floats(item, provider))
            continue
        if not isinstance(item, list) or not item:
            raise InvalidResponse(f"{provider} answered a vector that is not one", status_code=200)
        vector = []
        for value in item:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidResponse(
                    f"{provider} answered a non-number in a vector", status_code=200
                )
            if not math.isfinite(value):
                raise InvalidResponse(f"{provider} answered a non-finite number", status_code=200)
            vector.append(float(value))
        vectors.append(vector)
    if len({len(v) for v in vectors}) > 1:
        raise InvalidResponse(f"{provider} answered vectors of different lengths", status_code=200)
    return vectors


def decode_base64_floats(text: str, provider: str) -> list[float]:
    """OpenAI's ``encoding_format: base64``: little-endian float32s, as the SDK decodes them."""
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raise InvalidResponse(
            f"{provider} answered a vector that is not base64", status_code=200
        ) from None
    if not raw or len(raw) % 4:
        raise InvalidResponse(
            f"{provider} answered {len(raw)} bytes: not float32s", status_code=200
        )
    return [float(v) for v in struct.unpack(f"<{len(raw) // 4}f", raw)]


def dict_or_fail(data: Any, provider: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InvalidResponse(f"{provider} answered 200 without a JSON object", status_code=200)
    return data
