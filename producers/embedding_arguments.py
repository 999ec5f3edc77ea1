"""What ``Client.embed`` and its kin accept, checked before anything is enqueued: the texts (a
string, a list of strings, an EmbeddingRequest or a dict of its fields) and targets that can
embed them with one vector dimension (routing.embeddings)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from producers.openai_format import invalid
from routing.config import TurnoutConfig
from routing.embeddings import EmbeddingRequest, embedding_targets_problem
from routing.errors import InvalidRequest
from routing.models import RoutingPolicy

EmbeddingLike = EmbeddingRequest | Mapping[str, Any] | str | Sequence[str]


def as_embedding_request(request: EmbeddingLike, **fields: Any) -> EmbeddingRequest:
    """An EmbeddingRequest; ``fields`` (dimensions, input_type, ...) apply to bare texts."""
    if isinstance(request, EmbeddingRequest):
        if fields:
            raise InvalidRequest(
                "pass dimensions and the like inside the EmbeddingRequest, not beside it"
            )
        return request
    if isinstance(request, str):
        data: dict[str, Any] = {"input": [request], **fields}
    elif isinstance(request, Mapping):
        data = {**dict(request), **fields}
        if isinstance(data.get("input"), str):
            data["input"] = [data["input"]]
    elif isinstance(request, Sequence) and not isinstance(request, bytes | bytearray):
        data = {"input": list(request), **fields}
    else:
        raise InvalidRequest(
            "input: a text (str), a list of texts, an EmbeddingRequest or a dict of its fields "
            f"is required, not {type(request).__name__}",
            param="input",
        )
    try:
        return EmbeddingRequest.model_validate(data)
    except ValidationError as exc:
        raise invalid(exc, prefix="invalid embeddings request: ") from None


def check_embedding_targets(config: TurnoutConfig, policy: RoutingPolicy) -> None:
    problem = embedding_targets_problem(config, policy)
    if problem is not None:
        raise InvalidRequest(f"invalid embeddings request: {problem}", param="model")
