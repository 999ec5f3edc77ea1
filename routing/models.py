"""Models at turnout's boundaries: what callers submit, what a job records, what they get back.

They validate at the producer so a bad job never reaches a worker, and they are the JSON stored
in the job record, so a worker re-validates exactly what the producer accepted.
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    field_validator,
    model_serializer,
    model_validator,
)

from routing.breaker import BreakerRefusal
from routing.chat_parts import (
    MAX_IMAGES,
    MAX_TOOLS,
    ResponseFormat,
    Tool,
    ToolCall,
    ToolChoice,
)
from routing.errors import ErrorClass
from routing.messages import Message as Message
from routing.messages import Role as Role
from routing.messages import check_tool_turns

# Bounds that protect Redis and the workers from absurd input; far above any real prompt.
MAX_MESSAGES = 2048
MAX_REQUEST_CHARS = 4_000_000
MAX_OUTPUT_TOKENS = 1_000_000

#: The openai SDK's values (``none``: no reasoning, and nothing needed of the model).
ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]
#: What a request may need of a model (routing.capabilities): routes lacking it are passed over.
Need = Literal["tools", "json_schema", "images", "reasoning"]
#: A job's priority lane (routing.lanes): ``interactive`` (a person waits) or ``bulk`` (a batch).
Lane = Literal["interactive", "bulk"]
FinishReason = Literal["stop", "length", "content_filter", "tool_calls", "error"]
Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:@/+-]+$")
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class CompletionRequest(_Strict):
    """One chat completion, in the provider-neutral shape every adapter translates from."""

    messages: list[Message] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_tokens: int | None = Field(default=None, gt=0, le=MAX_OUTPUT_TOKENS)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    stop: list[Annotated[str, StringConstraints(min_length=1)]] | None = Field(
        default=None, max_length=4
    )
    metadata: dict[
        Annotated[str, StringConstraints(min_length=1, max_length=64)],
        Annotated[str, StringConstraints(max_length=512)],
    ] = Field(default_factory=dict, max_length=16)
    idempotency_key: (
        Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$")]
        | None
    ) = None
    tools: list[Tool] | None = Field(default=None, min_length=1, max_length=MAX_TOOLS)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    seed: int | None = None
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    reasoning_effort: ReasoningEffort | None = None
    #: The caller's end-user id, forwarded to providers that take one (abuse monitoring).
    user: Annotated[str, StringConstraints(max_length=256)] | None = None

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_as_list(cls, stop: object) -> object:
        return [stop] if isinstance(stop, str) else stop

    @model_validator(mode="after")
    def _has_a_turn_and_fits(self) -> CompletionRequest:
        if all(message.role == "system" for message in self.messages):
            raise ValueError("messages need at least one user or assistant message")
        if sum(len(message.content) for message in self.messages) > MAX_REQUEST_CHARS:
            raise ValueError(f"messages exceed {MAX_REQUEST_CHARS} characters in total")
        if sum(len(m.images) for m in self.messages) > MAX_IMAGES:
            raise ValueError(f"a request carries at most {MAX_IMAGES} images")
        check_tool_turns(self.messages)
        _check_tool_use(self)
        return self

    @property
    def needs(self) -> list[Need]:
        """What a target's model must have to take this request (routing.capabilities)."""
        needs: list[Need] = []
        if self.tools or any(m.tool_calls or m.role == "tool" for m in self.messages):
            needs.append("tools")
        if self.response_format is not None and self.response_format.type == "json_schema":
            needs.append("json_schema")
        if any(m.images for m in self.messages):
            needs.append("images")
        if self.reasoning_effort not in (None, "none"):
            needs.append("reasoning")
        return needs

    @property
    def output_schema(self) -> dict[str, Any] | None:
        """The JSON schema the reply must match, when the request asks for one."""
        form = self.response_format
        return form.json_schema.json_schema if form and form.json_schema else None

    @classmethod
    def from_prompt(
        cls, prompt: str, *, system: str | None = None, max_tokens: int | None = None
    ) -> CompletionRequest:
        messages = [Message(role="system", content=system)] if system else []
        messages.append(Message(role="user", content=prompt))
        return cls(messages=messages, max_tokens=max_tokens)


def _check_tool_use(request: CompletionRequest) -> None:
    choice = request.tool_choice
    if choice is None:
        return
    if not request.tools and choice != "none":
        raise ValueError("tool_choice needs tools")
    if not isinstance(choice, str):
        names = {tool.function.name for tool in request.tools or ()}
        if choice.function.name not in names:
            raise ValueError(f"tool_choice names {choice.function.name!r}, which is not in tools")


RetryClass = Literal[
    "rate_limited", "overloaded", "server_error", "timeout", "connection", "invalid_output"
]
Strategy = Literal["ordered", "cheapest", "fastest", "weighted", "least_busy"]


class RoutingPolicy(_Strict):
    """How a job chooses and retries its deployments. Carried whole by every job, so a job's
    routing is fixed when it is submitted, whatever the config says later.

    Strategies order the targets (deployment ids or aliases): ``ordered`` as listed; ``cheapest``
    by estimated cost (price x estimated tokens); ``fastest`` by latency measured across the
    fleet; ``weighted`` at random by the deployments' weights; ``least_busy`` by calls in flight
    across the fleet. Targets the breaker, a rate limit, the budget, the context window or the
    provider lists rule out are passed over, and the attempt log says why.

    Backoff on one deployment is exponential with jitter (``full``: AWS's "full jitter")::

        wait(n) = random(0, min(backoff_max_s, backoff_base_s * 2**n))   # n = retries so far

    unless the provider named a delay (Retry-After), which is honoured when it is at most
    ``retry_after_max_s``; a longer one moves the job to the next target instead of waiting.
    """

    strategy: Strategy = "ordered"
    targets: list[Identifier] = Field(min_length=1, max_length=64)
    #: Only these providers (None: any) / never these.
    allow_providers: list[str] | None = None
    deny_providers: list[str] = Field(default_factory=list)
    #: Targets whose estimated cost for this job is higher are passed over.
    max_cost_usd: float | None = Field(default=None, gt=0)
    attempt_timeout_s: float = Field(default=60.0, gt=0, le=3600)
    deadline_s: float = Field(default=300.0, gt=0, le=86_400)
    #: Retries on one deployment for transient errors; None: the provider's own default (its
    #: SDK's, or ANTHROPIC_MAX_RETRIES / GEMINI_MAX_RETRIES).
    retries_per_target: int | None = Field(default=None, ge=0, le=10)
    #: Retries per error class, over retries_per_target (LiteLLM's RetryPolicy).
    retries: dict[RetryClass, Annotated[int, Field(ge=0, le=10)]] = Field(default_factory=dict)
    backoff_base_s: float = Field(default=0.5, ge=0, le=60)
    backoff_max_s: float = Field(default=8.0, ge=0, le=600)
    backoff_jitter: Literal["full", "equal", "none"] = "full"
    retry_after_max_s: float = Field(default=60.0, ge=0, le=3600)
    #: Pass over targets whose context window cannot hold the prompt and max_tokens, and after a
    #: context_length error try only larger ones.
    context_window_fallback: bool = True
    #: After a content_policy refusal, try the next target (False: fail the job).
    content_policy_fallback: bool = True
    #: When every target is unavailable (breakers open, limits spent): wait for the earliest
    #: to return within the deadline, or fail at once.
    on_all_unavailable: Literal["wait", "fail"] = "wait"
    #: A parameter the target's model does not accept (routing.capabilities, and what the fleet
    #: learnt from refusals): ``drop`` it for that target (the attempt log says so), ``skip``
    #: the target, or ``fail`` the job. A conversation ending with an assistant turn (prefill)
    #: is never dropped: a model that refuses it is passed over.
    unsupported_parameters: Literal["drop", "skip", "fail"] = "drop"
    #: With ``response_format`` json_schema, check every reply against the schema: one that is
    #: not JSON or does not match is a failed attempt (``invalid_output``), retried and failed
    #: over like a server error, moving no breaker. False: the reply is taken as it comes.
    check_output: bool = True
    #: The lane its jobs go to (routing.lanes); None: the caller's default (``interactive`` for
    #: Client, serve and submit; ``bulk`` for batch). A job's stored policy has it resolved.
    lane: Lane | None = None

    @field_validator("targets")
    @classmethod
    def _unique_targets(cls, targets: list[str]) -> list[str]:
        duplicates = sorted({t for t in targets if targets.count(t) > 1})
        if duplicates:
            raise ValueError(f"targets are listed twice: {', '.join(duplicates)}")
        return targets


class Usage(_Strict):
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)
    total_tokens: int = Field(ge=0)
    cached_tokens: int | None = Field(default=None, ge=0)
    #: Of completion_tokens, those spent thinking (reasoning models), when the provider says.
    #: Left out of the dump when unknown, so usage reads as it did before it was counted.
    reasoning_tokens: int | None = Field(default=None, ge=0)

    @model_serializer(mode="wrap")
    def _without_unknown_reasoning(self, handler: SerializerFunctionWrapHandler) -> Any:
        dumped = handler(self)
        if isinstance(dumped, dict) and dumped.get("reasoning_tokens") is None:
            dumped.pop("reasoning_tokens", None)
        return dumped


class ProviderCompletion(_Strict):
    """What an adapter makes of a successful provider response."""

    text: str
    finish_reason: FinishReason
    provider_finish_reason: str | None
    usage: Usage | None
    model: str | None = None
    response_id: str | None = None
    tool_calls: list[ToolCall] | None = None
    #: The reply as JSON, when the request asked for a JSON schema and the reply was checked.
    parsed: Any = None


AttemptOutcome = Literal["ok", "skipped"] | ErrorClass
#: Why a router passed a route over: its breaker (routing.breaker) or its rate limits.
RouteRefusal = Literal[BreakerRefusal, "rate_limited"]
#: Why a target was passed over: the router's refusal, or the plan's (routing.planning).
SkipReason = Literal[
    RouteRefusal,
    "over_budget",
    "context_too_small",
    "denied_by_policy",
    "smaller_context",
    #: the route's key (or another variable its provider needs) is unset on this worker
    "missing_credential",
    #: its model refuses a parameter the request sets (or assistant prefill)
    "unsupported_parameter",
    #: its model (or turnout's adapter for its protocol) lacks what the request needs: tools,
    #: a JSON schema, images or reasoning (``lacks tools``)
    "lacks_capability",
]


class Attempt(_Strict):
    """One call to one deployment, or one target passed over, as the attempt log records it."""

    deployment: str
    provider: str
    model: str
    outcome: AttemptOutcome
    status_code: int | None = None
    latency_ms: float = 0.0
    retry_after_s: float | None = None
    message: str | None = None
    #: Why a target was passed over (outcome "skipped").
    reason: SkipReason | None = None
    #: The variable of the key used, for a deployment with a key pool.
    key: str | None = None
    #: The call was a half-open probe of the route's breaker.
    probe: bool = False
    run: int = 1
    started_at: float


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def is_terminal(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED)


class JobError(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    error_class: ErrorClass = Field(alias="class")
    message: str


class WaitingRoute(_Strict):
    """One route a waiting job waits for: why it is out, and when it may take calls again."""

    route: str
    reason: RouteRefusal
    #: the breaker's own reason ("5 consecutive failures"), or the refusal's details
    detail: str = ""
    #: epoch seconds; None when unknown
    until: float | None = None


class Waiting(_Strict):
    """A queued job every route refuses for now, waiting for those that heal by themselves (a
    cool-down, a Retry-After, a rate limit's window): written when its run is rescheduled, gone
    once a worker claims it again or it finishes."""

    routes: list[WaitingRoute] = Field(min_length=1)
    #: when a worker looks at the job again (epoch seconds)
    until: float

    def describe(self) -> str:
        """``openai-main (open: 5 consecutive failures) until 12:00:30Z``, one per route."""
        return "; ".join(
            f"{r.route} ({r.reason}{': ' + r.detail if r.detail else ''})"
            + (f" until {_utc(r.until)}" if r.until is not None else "")
            for r in self.routes
        )


class SpentBudget(_Strict):
    """What a job's earlier runs spent of its retry budget, kept in the job record so the budget
    holds across reschedules: written when a run is rescheduled (release_job), handed to the next
    run by its claim. A run that dies with its worker writes none: its calls are in the attempt
    log, and the run after it starts from the last reschedule's."""

    #: route id -> the provider calls this job made on it, over all its runs
    calls: dict[str, int] = Field(default_factory=dict)
    #: routes this job is done with (their retries spent, or failed in a way no retry mends):
    #: a later run does not call them again
    dropped: list[str] = Field(default_factory=list)

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())


def _utc(epoch_s: float) -> str:
    return time.strftime("%H:%M:%SZ", time.gmtime(epoch_s))


class CompletionResult(_Strict):
    """A job as its caller sees it: the contract of ``turnout submit --json``."""

    job_id: str
    state: JobState
    text: str | None = None
    finish_reason: FinishReason | None = None
    provider_finish_reason: str | None = None
    tool_calls: list[ToolCall] | None = None
    #: The reply as JSON, checked against the request's json_schema (None otherwise).
    parsed: Any = None
    deployment: str | None = None
    provider: str | None = None
    model: str | None = None
    usage: Usage | None = None
    cost_usd: float | None = None
    attempts: list[Attempt] = Field(default_factory=list)
    error: JobError | None = None
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    runs: int = 0
    #: set while the job is queued waiting for its routes to return (None otherwise)
    waiting: Waiting | None = None
    #: an embeddings job's vectors, one per input in order (routing.embeddings)
    embeddings: list[list[float]] | None = None

    @property
    def succeeded(self) -> bool:
        return self.state is JobState.SUCCEEDED

    @property
    def provider_calls(self) -> list[Attempt]:
        """The attempts that called a provider: the log without the targets passed over, which
        cost nothing and took no time. What "N calls" counts wherever turnout says it."""
        return [a for a in self.attempts if a.outcome != "skipped"]

    def to_json_dict(self) -> dict[str, object]:
        return self.model_dump(mode="json", by_alias=True)
