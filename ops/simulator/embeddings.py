"""What the simulators answer for embeddings: deterministic vectors (the same text and model
give the same vector on every simulator, a hash of them), of the dimension the request asks for
or the model table's for the model, and each protocol's request checks and reply body.

The simulators' own modules wire these to their paths, so the shared faults (ops.simulator.faults)
apply to embeddings as to completions.
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from typing import Any

from ops.simulator.base import estimate_tokens
from routing.embeddings import table_dimensions

#: A model the table does not know embeds in this many dimensions.
DEFAULT_DIMENSIONS = 768


def dimensions_for(provider: str, model: str, asked: object) -> int:
    if isinstance(asked, int) and not isinstance(asked, bool) and asked > 0:
        return asked
    return table_dimensions(provider, model) or DEFAULT_DIMENSIONS


def vector_for(text: str, model: str, dimensions: int) -> list[float]:
    """A unit vector from SHA-256 of the model and the text: stable, and different per text."""
    values: list[float] = []
    counter = 0
    while len(values) < dimensions:
        digest = hashlib.sha256(f"{model}\x00{counter}\x00{text}".encode()).digest()
        values.extend((b - 127.5) / 127.5 for b in digest)
        counter += 1
    del values[dimensions:]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    # Rounded through float32, as every real service returns them.
    return [struct.unpack("<f", struct.pack("<f", v / norm))[0] for v in values]


def as_base64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def texts_of(value: object) -> list[str] | None:
    """A string or a non-empty list of non-empty strings, as a list; None otherwise."""
    if isinstance(value, str):
        return [value] if value else None
    if isinstance(value, list) and value and all(isinstance(t, str) and t for t in value):
        return list(value)
    return None


def tokens_of(texts: list[str]) -> int:
    return sum(estimate_tokens(text) for text in texts)


# --- OpenAI (and Azure, vLLM, Together, Mistral) -----------------------------------------------


def openai_problem(request: Any) -> tuple[str, str | None] | None:
    """(message, param) of OpenAI's 400 for a bad embeddings request."""
    if not isinstance(request, dict):
        return "We could not parse the JSON body of your request.", None
    if not isinstance(request.get("model"), str) or not request["model"]:
        return "you must provide a model parameter", "model"
    if texts_of(request.get("input")) is None:
        return "'$.input' is invalid. Please check the API reference.", "input"
    if request.get("encoding_format", "float") not in ("float", "base64"):
        return "Invalid value for 'encoding_format'.", "encoding_format"
    return None


def openai_embeddings(request: dict[str, Any], model: str | None = None) -> dict[str, Any]:
    model = model or request["model"]
    texts = texts_of(request["input"]) or []
    dims = dimensions_for("openai", model, request.get("dimensions"))
    encode = request.get("encoding_format") == "base64"
    data = []
    for index, text in enumerate(texts):
        vector = vector_for(text, model, dims)
        data.append(
            {
                "object": "embedding",
                "index": index,
                "embedding": as_base64(vector) if encode else vector,
            }
        )
    tokens = tokens_of(texts)
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


# --- Cohere v2 -----------------------------------------------------------------------------------


def cohere_problem(request: Any) -> str | None:
    if not isinstance(request, dict):
        return "invalid request: body must be a JSON object"
    if not isinstance(request.get("model"), str):
        return "invalid request: model is required"
    if texts_of(request.get("texts")) is None and request.get("inputs") is None:
        return "invalid request: texts must be a non-empty list of strings"
    if request.get("input_type") not in (
        "search_document",
        "search_query",
        "classification",
        "clustering",
        "image",
    ):
        return (
            "invalid request: input_type is required for embed models v3 and higher, and must "
            "be one of search_document, search_query, classification, clustering, image"
        )
    return None


def cohere_embed(request: dict[str, Any], response_id: str) -> dict[str, Any]:
    model = request["model"]
    texts = texts_of(request["texts"]) or []
    dims = dimensions_for("cohere", model, request.get("output_dimension"))
    vectors = [vector_for(text, model, dims) for text in texts]
    types = request.get("embedding_types") or ["float"]
    return {
        "id": response_id,
        "embeddings": {kind: vectors for kind in types if kind == "float"},
        "texts": texts,
        "meta": {
            "api_version": {"version": "2"},
            "billed_units": {"input_tokens": tokens_of(texts)},
        },
    }


# --- Gemini batchEmbedContents -----------------------------------------------------------------


def gemini_problem(request: Any, model: str) -> str | None:
    if not isinstance(request, dict) or not isinstance(request.get("requests"), list):
        return "* BatchEmbedContentsRequest.requests: requests is not specified"
    if not request["requests"]:
        return "* BatchEmbedContentsRequest.requests: requests is not specified"
    for index, entry in enumerate(request["requests"]):
        named = entry.get("model", "") if isinstance(entry, dict) else ""
        if named.removeprefix("models/") != model:
            return (
                f"* BatchEmbedContentsRequest.requests[{index}].model: the model of each request "
                "must be the model of the batch"
            )
        parts = (entry.get("content") or {}).get("parts")
        if not isinstance(parts, list) or not parts:
            return f"* BatchEmbedContentsRequest.requests[{index}].content: contents is empty"
    return None


def gemini_batch_embed(request: dict[str, Any], model: str) -> dict[str, Any]:
    embeddings = []
    for entry in request["requests"]:
        text = "".join(str(p.get("text", "")) for p in entry["content"]["parts"])
        dims = dimensions_for("gemini", model, entry.get("outputDimensionality"))
        embeddings.append({"values": vector_for(text, model, dims)})
    return {"embeddings": embeddings}


# --- Vertex AI :predict (text-embedding models) --------------------------------------------------


def vertex_problem(request: Any) -> str | None:
    if not isinstance(request, dict) or not isinstance(request.get("instances"), list):
        return "Invalid JSON payload received. instances is required."
    for index, instance in enumerate(request["instances"]):
        if not isinstance(instance, dict) or not isinstance(instance.get("content"), str):
            return f"Invalid JSON payload received. instances[{index}].content is required."
    return None


def vertex_predict(request: dict[str, Any], model: str) -> dict[str, Any]:
    asked = (request.get("parameters") or {}).get("outputDimensionality")
    dims = dimensions_for("vertex", model, asked)
    predictions = []
    for instance in request["instances"]:
        text = instance["content"]
        predictions.append(
            {
                "embeddings": {
                    "values": vector_for(text, model, dims),
                    "statistics": {"token_count": estimate_tokens(text), "truncated": False},
                }
            }
        )
    billable = sum(len(i["content"]) for i in request["instances"])
    return {"predictions": predictions, "metadata": {"billableCharacterCount": billable}}


# --- Ollama /api/embed ---------------------------------------------------------------------------


def ollama_problem(request: Any) -> str | None:
    if not isinstance(request, dict):
        return "missing request body"
    if not isinstance(request.get("model"), str) or not request["model"]:
        return "model is required"
    if texts_of(request.get("input")) is None:
        return "invalid input type"
    return None


def ollama_embed(request: dict[str, Any]) -> dict[str, Any]:
    model = request["model"]
    texts = texts_of(request["input"]) or []
    dims = dimensions_for("ollama", model, request.get("dimensions"))
    return {
        "model": model,
        "embeddings": [vector_for(text, model, dims) for text in texts],
        "total_duration": 14143917,
        "load_duration": 1019500,
        "prompt_eval_count": tokens_of(texts),
    }


# --- Bedrock InvokeModel: Titan and Cohere Embed -----------------------------------------------


def is_bedrock_embedding_model(model: str) -> bool:
    return "titan-embed" in model or "cohere.embed" in model


def bedrock_problem(request: Any, model: str) -> str | None:
    if not isinstance(request, dict):
        return "Malformed input request, please reformat your input and try again."
    if "titan-embed" in model:
        if not isinstance(request.get("inputText"), str) or not request["inputText"]:
            return "Malformed input request: #: required key [inputText] not found"
        extra = set(request) - {"inputText", "dimensions", "normalize", "embeddingTypes"}
        if extra:
            return (
                f"Malformed input request: #: extraneous key [{sorted(extra)[0]}] is not permitted"
            )
        return None
    if texts_of(request.get("texts")) is None:
        return "Malformed input request: #: required key [texts] not found"
    if request.get("input_type") is None:
        return "Malformed input request: #: required key [input_type] not found"
    return None


def bedrock_invoke_embed(request: dict[str, Any], model: str, response_id: str) -> dict[str, Any]:
    if "titan-embed" in model:
        text = request["inputText"]
        dims = dimensions_for("bedrock", model, request.get("dimensions"))
        return {
            "embedding": vector_for(text, model, dims),
            "embeddingsByType": {"float": vector_for(text, model, dims)},
            "inputTextTokenCount": estimate_tokens(text),
        }
    texts = texts_of(request["texts"]) or []
    dims = dimensions_for("bedrock", model, request.get("output_dimension"))
    vectors = [vector_for(text, model, dims) for text in texts]
    if request.get("embedding_types"):
        return {
            "id": response_id,
            "response_type": "embeddings_by_type",
            "embeddings": {"float": vectors},
            "texts": texts,
        }
    return {
        "id": response_id,
        "response_type": "embeddings_floats",
        "embeddings": vectors,
        "texts": texts,
    }
