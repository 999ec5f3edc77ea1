"""OpenAI's chat-completions shapes at turnout's edge: a request in, a ``chat.completion`` body
or an error body out. Shared by the batch runner and ``turnout serve`` so callers that already
speak OpenAI (its SDK, its Batch API files) need nothing new. Pure: no Redis, no HTTP.

``model`` names what routes the job: a policy of the config, a deployment or an alias. The body
that comes back names the model and the provider that really served it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from routing.chat_parts import (
    ContentPart,
    ImagePart,
    ResponseFormat,
    TextPart,
    Tool,
    ToolCall,
    ToolChoice,
)
from routing.config import TurnoutConfig
from routing.errors import ErrorClass, InvalidRequest
from routing.models import (
    MAX_MESSAGES,
    MAX_OUTPUT_TOKENS,
    CompletionRequest,
    CompletionResult,
    Message,
    ReasoningEffort,
)

#: Text that is not blank: what a provider accepts as a message.
NonBlank = Annotated[str, StringConstraints(min_length=1, pattern=r"\S")]
StopText = Annotated[str, StringConstraints(min_length=1)]


class ChatMessage(BaseModel):
    """A message as OpenAI's SDK sends it: text or content parts (text, ``image_url``), an
    assistant turn's ``tool_calls`` (its content then may be null), a ``tool`` turn's
    ``tool_call_id``. Audio and file parts are not built, and refused."""

    model_config = ConfigDict(extra="forbid")

    #: ``developer`` is OpenAI's newer name for ``system``.
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: NonBlank | Annotated[list[ContentPart], Field(min_length=1)] | None = None
    name: str | None = Field(default=None, max_length=64)
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    #: The SDK echoes an assistant message back whole: its refusal (None) is accepted.
    refusal: str | None = None


class ChatCompletionRequest(BaseModel):
    """The body of ``POST /v1/chat/completions``, the fields turnout carries; any other field
    is refused (a ``tools`` or ``response_format`` silently dropped would answer a different
    question than the caller asked)."""

    model_config = ConfigDict(extra="forbid")

    #: A policy of the config, a deployment id or an alias.
    model: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_tokens: int | None = Field(default=None, gt=0, le=MAX_OUTPUT_TOKENS)
    #: OpenAI's newer name for ``max_tokens``; when both are given, this one wins.
    max_completion_tokens: int | None = Field(default=None, gt=0, le=MAX_OUTPUT_TOKENS)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    #: Stop sequences may be whitespace ("\n\n" is a common one), never empty.
    stop: StopText | Annotated[list[StopText], Field(min_length=1, max_length=4)] | None = None
    #: One choice per job; accepted so SDKs that send ``n: 1`` work.
    n: Literal[1] | None = None
    #: Streaming is not built: ``true`` is refused with a clear 400.
    stream: bool | None = None
    metadata: (
        dict[
            Annotated[str, StringConstraints(min_length=1, max_length=64)],
            Annotated[str, StringConstraints(max_length=512)],
        ]
        | None
    ) = Field(default=None, max_length=16)
    #: OpenAI's end-user id, forwarded to the providers that take one.
    user: str | None = Field(default=None, max_length=256)
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    reasoning_effort: ReasoningEffort | None = None

    def to_completion_request(self, idempotency_key: str | None = None) -> CompletionRequest:
        """The provider-neutral request; InvalidRequest (with the field) if it is not one."""
        if self.stream:
            raise InvalidRequest(
                "stream: streaming is not supported by turnout; send stream: false", param="stream"
            )
        try:
            return CompletionRequest(
                messages=[_message(m) for m in self.messages],
                max_tokens=self.max_completion_tokens or self.max_tokens,
                temperature=self.temperature,
                top_p=self.top_p,
                stop=self.stop,
                metadata=self.metadata or {},
                idempotency_key=idempotency_key,
                tools=self.tools,
                tool_choice=self.tool_choice,
                parallel_tool_calls=self.parallel_tool_calls,
                response_format=self.response_format,
                seed=self.seed,
                presence_penalty=self.presence_penalty,
                frequency_penalty=self.frequency_penalty,
                logprobs=self.logprobs,
                top_logprobs=self.top_logprobs,
                reasoning_effort=self.reasoning_effort,
                user=self.user,
            )
        except ValidationError as exc:
            raise invalid(exc) from None


def _message(message: ChatMessage) -> Message:
    content = message.content
    role = "system" if message.role == "developer" else message.role
    parts: list[TextPart | ImagePart] | None = None
    if isinstance(content, list):
        text = "\n".join(part.text for part in content if isinstance(part, TextPart))
        if any(isinstance(part, ImagePart) for part in content):
            parts = list(content)
    else:
        text = content or ""
    return Message(
        role=role,
        content=text,
        parts=parts,
        tool_calls=message.tool_calls,
        tool_call_id=message.tool_call_id,
    )


def describe(exc: ValidationError) -> str:
    """One line naming every bad field: ``messages.0.content: ...; max_tokens: ...``."""
    return "; ".join(
        f"{field_path(error['loc']) or 'body'}: {error['msg']}" for error in exc.errors()
    )


def invalid(exc: ValidationError, prefix: str = "") -> InvalidRequest:
    """A validation failure as the producer's refusal, naming the first field at fault."""
    paths = [path for error in exc.errors() if (path := field_path(error["loc"]))]
    return InvalidRequest(prefix + describe(exc), param=paths[0] if paths else None)


#: Parts of a pydantic error location that name a member of a union (``str``,
#: ``list[TextPart]``, ``function-after[...]``), not a field.
_UNION_TAG = re.compile(r"^(str|int|float|bool|list|dict|none|literal)$|[\[\]()-]")


def field_path(loc: Sequence[Any]) -> str:
    """Where the request is wrong: ``("body", "messages", 0, "content", "str")`` ->
    ``messages.0.content`` (without where it came from or which member of a union was tried);
    ``("header", "Idempotency-Key")`` -> ``Idempotency-Key``."""
    parts = list(loc)
    if parts and parts[0] in ("header", "path", "query"):
        return ".".join(str(part) for part in parts[1:])
    if parts and parts[0] == "body":
        parts = parts[1:]
    kept: list[str] = []
    for part in parts:
        if isinstance(part, str) and _UNION_TAG.search(part):
            break
        kept.append(str(part))
    return ".".join(kept)


@dataclass(frozen=True)
class Route:
    """What a ``model`` names: a policy, or targets (a deployment or an alias)."""

    policy: str | None = None
    targets: tuple[str, ...] = ()


class UnknownModel(InvalidRequest):
    """``model`` names no policy, deployment or alias (OpenAI answers this with 404)."""


def route_of(config: TurnoutConfig, model: str) -> Route:
    if model in config.policies:
        return Route(policy=model)
    if model in config.deployments or model in config.aliases:
        return Route(targets=(model,))
    known = sorted({*config.policies, *config.deployments, *config.aliases})
    raise UnknownModel(
        f"The model '{model}' does not exist: name a policy, a deployment or an alias "
        f"({', '.join(known)})"
    )


# --- responses ------------------------------------------------------------------------------


def chat_completion(result: CompletionResult) -> dict[str, Any]:
    """A succeeded job as OpenAI's ``chat.completion``, naming the model and provider that
    served it; turnout's own facts ride in ``turnout`` (SDKs keep unknown fields)."""
    usage = result.usage
    finished = result.finished_at or result.created_at or time.time()
    body: dict[str, Any] = {
        "id": f"chatcmpl-{result.job_id}",
        "object": "chat.completion",
        "created": int(finished),
        "model": result.model or result.deployment or "",
        "provider": result.provider,
        "choices": [
            {
                "index": 0,
                "message": _assistant_message(result),
                "finish_reason": _finish_reason(result.finish_reason),
                "logprobs": None,
            }
        ],
        "usage": None,
        "system_fingerprint": None,
        "turnout": turnout_facts(result),
    }
    if result.parsed is not None:
        body["turnout"]["parsed"] = result.parsed
    if usage is not None:
        body["usage"] = {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
            "prompt_tokens_details": {"cached_tokens": usage.cached_tokens or 0},
            "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens or 0},
        }
    return body


def _assistant_message(result: CompletionResult) -> dict[str, Any]:
    """The reply as OpenAI's assistant message: ``content`` null when the model only called
    tools (as OpenAI answers), the calls with their ids as the model (or turnout, for a
    protocol whose ids differ) named them."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": result.text if result.text or not result.tool_calls else None,
        "refusal": None,
    }
    if result.tool_calls:
        message["tool_calls"] = [call.model_dump(mode="json") for call in result.tool_calls]
    return message


def turnout_facts(result: CompletionResult) -> dict[str, Any]:
    """The job behind a body (schemas.TurnoutFacts). ``attempts`` is the attempt log exactly as
    ``turnout show --json`` has it, so the name means one thing everywhere; ``calls`` counts the
    provider calls in it (targets passed over are not calls)."""
    return {
        "job_id": result.job_id,
        "deployment": result.deployment,
        "provider": result.provider,
        "cost_usd": result.cost_usd,
        "calls": len(result.provider_calls),
        "runs": result.runs,
        "attempts": [attempt.model_dump(mode="json") for attempt in result.attempts],
    }


def _finish_reason(reason: str | None) -> str:
    # OpenAI's values; turnout's "error" never ends a succeeded job, but a body must be valid.
    return reason if reason in ("stop", "length", "content_filter", "tool_calls") else "stop"


ErrorType = Literal[
    "invalid_request_error",
    "authentication_error",
    "not_found_error",
    "rate_limit_error",
    "timeout_error",
    "upstream_error",
    "server_error",
    "service_unavailable",
]


@dataclass(frozen=True)
class HttpFailure:
    status: int
    type: ErrorType
    code: str


#: A failed job's class as an HTTP answer. The caller's request was fine unless it says 400:
#: a provider's failure (even its rejected key: turnout's configuration, not the caller's) is a
#: 502, every target dark a 503, the deadline a 504.
_FAILURES: dict[ErrorClass, HttpFailure] = {
    ErrorClass.BAD_REQUEST: HttpFailure(400, "invalid_request_error", "bad_request"),
    ErrorClass.CONTEXT_LENGTH: HttpFailure(400, "invalid_request_error", "context_length_exceeded"),
    ErrorClass.CONTENT_POLICY: HttpFailure(
        400, "invalid_request_error", "content_policy_violation"
    ),
    ErrorClass.NO_CANDIDATES: HttpFailure(400, "invalid_request_error", "no_candidates"),
    # No target's model takes a parameter the request sets (prefill, or the policy said fail).
    ErrorClass.UNSUPPORTED_PARAMETER: HttpFailure(
        400, "invalid_request_error", "unsupported_parameter"
    ),
    ErrorClass.RATE_LIMITED: HttpFailure(429, "rate_limit_error", "rate_limited"),
    ErrorClass.ALL_UNAVAILABLE: HttpFailure(503, "service_unavailable", "all_unavailable"),
    ErrorClass.DEADLINE_EXCEEDED: HttpFailure(504, "timeout_error", "deadline_exceeded"),
    ErrorClass.WORKER_LOST: HttpFailure(500, "server_error", "worker_lost"),
    ErrorClass.INTERNAL: HttpFailure(500, "server_error", "internal"),
}


def failure_of(error_class: ErrorClass) -> HttpFailure:
    return _FAILURES.get(error_class, HttpFailure(502, "upstream_error", error_class.value))


def error_body(
    message: str, type_: ErrorType, *, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """OpenAI's error shape, which its SDKs parse into their exceptions."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def failed_job_body(result: CompletionResult) -> tuple[int, dict[str, Any]]:
    """A failed job as an HTTP status and OpenAI error body (with turnout's facts)."""
    error_class = result.error.error_class if result.error else ErrorClass.INTERNAL
    message = result.error.message if result.error else "the job failed"
    failure = failure_of(error_class)
    body = error_body(message, failure.type, code=failure.code)
    body["turnout"] = turnout_facts(result)
    return failure.status, body
