"""What ``turnout serve`` answers, as pydantic models: the OpenAPI document's response schemas.

Handlers build their bodies with ``producers.openai_format`` and send them as they are; these
models only describe them, so the document says what the wire carries. The integration test
holds the two together: schemathesis checks every answer against this document.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from routing.models import Attempt, JobState, Waiting


class ErrorDetail(BaseModel):
    message: str
    type: str = Field(description="invalid_request_error, rate_limit_error, upstream_error, ...")
    param: str | None = Field(description="The request field at fault, when one is.")
    code: str | None = Field(description="A stable machine-readable reason.")


class TurnoutFacts(BaseModel):
    """The job behind an answer: which deployment served it, what it cost, how it got there."""

    job_id: str
    deployment: str | None
    provider: str | None
    cost_usd: float | None
    calls: int = Field(description="Provider calls made; targets passed over are not counted.")
    runs: int = Field(description="Times a worker started the job (2 or more: a worker was lost).")
    attempts: list[Attempt] = Field(
        description="Every provider call and every target passed over, with why: the same log "
        "as the job's own attempts."
    )
    parsed: Any = Field(
        default=None,
        description="With response_format json_schema: the reply as JSON, checked against "
        "the schema.",
    )


class PendingJob(BaseModel):
    """The job a 504 left running, and where to fetch its result."""

    job_id: str
    url: str


class ErrorBody(BaseModel):
    """OpenAI's error shape, which its SDKs turn into their exceptions."""

    error: ErrorDetail
    turnout: TurnoutFacts | PendingJob | None = None


class FunctionCall(BaseModel):
    name: str
    arguments: str = Field(description="The arguments as JSON text, as the model wrote them.")


class MessageToolCall(BaseModel):
    id: str
    type: Literal["function"]
    function: FunctionCall


class AssistantMessage(BaseModel):
    role: Literal["assistant"]
    content: str | None = Field(description="Null when the model only called tools.")
    refusal: str | None
    tool_calls: list[MessageToolCall] | None = None


class Choice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: Literal["stop", "length", "content_filter", "tool_calls"]
    logprobs: dict[str, Any] | None


class PromptTokensDetails(BaseModel):
    cached_tokens: int


class CompletionTokensDetails(BaseModel):
    reasoning_tokens: int = Field(description="Of completion_tokens, those spent thinking.")


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails
    completion_tokens_details: CompletionTokensDetails


class ChatCompletion(BaseModel):
    """OpenAI's ``chat.completion``; ``model`` and ``provider`` name what really served it."""

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    provider: str | None
    choices: list[Choice]
    usage: CompletionUsage | None
    system_fingerprint: str | None
    turnout: TurnoutFacts


class JobResponse(BaseModel):
    """What ``POST /v1/chat/completions`` would have answered for this job (the shape of a
    line of OpenAI's Batch API output)."""

    status_code: int
    body: ChatCompletion | ErrorBody


class JobView(BaseModel):
    id: str
    object: Literal["turnout.job"]
    state: JobState
    url: str
    created_at: float | None
    started_at: float | None
    finished_at: float | None
    runs: int
    response: JobResponse | None = Field(description="Set once the job has finished.")
    attempts: list[Attempt] = Field(
        description="Every provider call and every target passed over, with why."
    )
    waiting: Waiting | None = Field(
        default=None,
        description="Set while the job is queued waiting for routes every one of which refuses "
        "it for now: which, why each is out, and until when.",
    )


class Health(BaseModel):
    status: Literal["ok"]
