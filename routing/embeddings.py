"""Embeddings jobs: what callers submit, what an adapter makes of the reply, and the vector
dimension each model produces.

An embeddings job runs through the same machinery as a completion (the job record, the attempt
loop, the breaker, retries, cost); only its request and its result differ. The request carries
``kind: "embedding"`` so a job record says which of the two it holds (a completion request has
no ``kind``: its model forbids extra fields, so the two can never be mistaken for each other).

A policy mixes only deployments of the same vector dimension: vectors from two models cannot be
compared, so a batch half embedded by one and half by another would be silently useless. The
dimension is the deployment's ``dimensions:`` or the model table's (``data/models.json``,
``dimensions`` of an embedding model); routing.config refuses a policy or alias that mixes two.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import cache
from importlib.resources import files
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from routing.models import CompletionRequest, Message, RoutingPolicy, Usage

if TYPE_CHECKING:
    from routing.config import DeploymentConfig, TurnoutConfig

#: Inputs of one embeddings job (OpenAI's limit per request is 2048).
MAX_INPUTS = 2048
#: Characters of all inputs together: far above any real batch, it bounds the job record.
MAX_INPUT_CHARS = 4_000_000
MAX_DIMENSIONS = 65_536

#: The wire protocols turnout embeds on (workers.providers.embedding has their embedders).
EMBEDDING_PROTOCOLS = frozenset(
    {"openai", "azure", "gemini", "vertex", "cohere", "ollama", "bedrock"}
)

InputType = Literal["search_document", "search_query", "classification", "clustering"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class EmbeddingRequest(_Strict):
    """Texts to embed, in the provider-neutral shape every embedding adapter translates from."""

    kind: Literal["embedding"] = "embedding"
    input: list[Annotated[str, StringConstraints(min_length=1)]] = Field(
        min_length=1, max_length=MAX_INPUTS
    )
    #: Ask for shorter vectors (OpenAI text-embedding-3, Gemini, Titan v2, Cohere v4).
    dimensions: int | None = Field(default=None, gt=0, le=MAX_DIMENSIONS)
    #: What the vectors are for: Cohere and Gemini embed documents and queries differently.
    input_type: InputType | None = None
    user: Annotated[str, StringConstraints(max_length=256)] | None = None
    metadata: dict[
        Annotated[str, StringConstraints(min_length=1, max_length=64)],
        Annotated[str, StringConstraints(max_length=512)],
    ] = Field(default_factory=dict, max_length=16)
    idempotency_key: (
        Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$")]
        | None
    ) = None

    @field_validator("input")
    @classmethod
    def _fits(cls, texts: list[str]) -> list[str]:
        if sum(len(text) for text in texts) > MAX_INPUT_CHARS:
            raise ValueError(f"input exceeds {MAX_INPUT_CHARS} characters in total")
        blank = [index for index, text in enumerate(texts) if not text.strip()]
        if blank:
            raise ValueError(f"input {blank[0]} is blank")
        return texts

    @property
    def max_tokens(self) -> None:
        """The attempt loop reserves max_tokens of output on a route: an embedding writes none."""
        return None


#: What a job record's request is: a chat completion or an embeddings job.
JobRequest = CompletionRequest | EmbeddingRequest


def parse_job_request(raw: str | bytes) -> JobRequest:
    """The request a job record holds (ValidationError when it is neither kind)."""
    try:
        data = json.loads(raw)
    except ValueError:
        return CompletionRequest.model_validate_json(raw)  # raises its ValidationError
    if isinstance(data, dict) and data.get("kind") == "embedding":
        return EmbeddingRequest.model_validate(data)
    return CompletionRequest.model_validate(data)


class ProviderEmbedding(_Strict):
    """What an embedding adapter makes of a successful reply: one vector per input, in order."""

    vectors: list[list[float]]
    usage: Usage | None
    model: str | None = None

    @model_validator(mode="after")
    def _one_dimension(self) -> ProviderEmbedding:
        if len({len(v) for v in self.vectors}) > 1:
            raise ValueError("the vectors of one reply differ in length")
        return self


def embedding_usage(prompt_tokens: int) -> Usage:
    return Usage(prompt_tokens=prompt_tokens, completion_tokens=0, total_tokens=prompt_tokens)


@cache
def _table_dimensions() -> dict[str, dict[str, int]]:
    text = files("routing").joinpath("data/models.json").read_text(encoding="utf-8")
    providers: dict[str, dict[str, dict[str, object]]] = json.loads(text)["providers"]
    table: dict[str, dict[str, int]] = {}
    for provider, models in providers.items():
        for model, entry in models.items():
            dims = entry.get("dimensions")
            if isinstance(dims, int) and not isinstance(dims, bool):
                table.setdefault(provider.lower(), {})[model.lower()] = dims
    return table


_FALLBACK_PROVIDER = {"azure": "openai", "vertex": "gemini"}


def table_dimensions(provider: str, model: str) -> int | None:
    """The vector dimension the table gives an embedding model (None: not an embedding model
    the table knows)."""
    provider = provider.lower()
    model = model.lower().removeprefix("models/")
    if provider == "bedrock" and model.split(".", 1)[0] in ("us", "eu", "apac", "global"):
        model = model.split(".", 1)[1]
    for name in (provider, _FALLBACK_PROVIDER.get(provider)):
        if name is not None and model in _table_dimensions().get(name, {}):
            return _table_dimensions()[name][model]
    return None


def mixed_dimensions(dimensions: Mapping[str, int | None], members: Iterable[str]) -> str | None:
    """Why a list of deployments cannot share a policy (two known dimensions differ), naming
    both; None when they can."""
    seen: dict[int, str] = {}
    for member in members:
        dims = dimensions.get(member)
        if dims is None:
            continue
        for other_dims, other in seen.items():
            if other_dims != dims:
                return (
                    f"mixes vector dimensions: {other} makes {other_dims}-dimensional vectors "
                    f"and {member} {dims}-dimensional ones, which cannot be compared"
                )
        seen.setdefault(dims, member)
    return None


def embedding_outcome(embedding: ProviderEmbedding, deployment: DeploymentConfig) -> dict[str, Any]:
    """The job-record fields of a succeeded embeddings job (see CompletionResult)."""
    usage = embedding.usage
    return {
        "embeddings": embedding.vectors,
        "finish_reason": "stop",
        "deployment": deployment.id,
        "provider": deployment.provider,
        "model": embedding.model or deployment.model,
        "usage": usage.model_dump(mode="json") if usage else None,
        "cost_usd": deployment.cost_usd(usage.prompt_tokens, 0) if usage else None,
    }


def job_messages(request: JobRequest) -> list[Message]:
    """What the tokenizer counts of a job: a completion's messages, an embedding's inputs."""
    if isinstance(request, CompletionRequest):
        return list(request.messages)
    return [Message(role="user", content=text) for text in request.input]


def embedding_targets_problem(config: TurnoutConfig, policy: RoutingPolicy) -> str | None:
    """Why an embeddings job cannot run on the policy's targets, for the producer to refuse it
    before enqueue: a target whose protocol turnout embeds nothing on, or two dimensions."""
    members = config.expand(policy.targets)
    deployments = [config.deployments[m] for m in members if m in config.deployments]
    cannot = [d for d in deployments if d.wire_protocol not in EMBEDDING_PROTOCOLS]
    if cannot:
        named = ", ".join(f"{d.id} ({d.provider})" for d in cannot)
        return f"these targets make no embeddings in turnout: {named}"
    dimensions = {d.id: d.vector_dimensions for d in deployments}
    mixed = mixed_dimensions(dimensions, members)
    return f"the targets {mixed}" if mixed else None


def requested_dimensions(request: EmbeddingRequest, deployment: DeploymentConfig) -> int | None:
    """The dimension to ask the provider for: the request's, else the deployment's own when it
    declares a shorter one than its model's native (``dimensions: 256`` on text-embedding-3).
    A declaration that only names the native dimension asks for nothing: models without the
    parameter (ada-002, most vLLM models) refuse it."""
    if request.dimensions is not None:
        return request.dimensions
    native = table_dimensions(deployment.provider, deployment.base_model or deployment.model)
    declared = deployment.dimensions
    return declared if declared is not None and native is not None and declared != native else None


def planning_policy(request: JobRequest, policy: RoutingPolicy) -> RoutingPolicy:
    """The policy a job's targets are planned with. A model's context window bounds each input
    of an embeddings job, not their sum (2048 texts of 100 tokens fit text-embedding-3's 8191
    window), so the sum rules no target out; an input too long for its model comes back as the
    provider's context_length error, and the job moves on to a larger window."""
    if isinstance(request, EmbeddingRequest) and policy.context_window_fallback:
        return policy.model_copy(update={"context_window_fallback": False})
    return policy
