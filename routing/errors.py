"""The error taxonomy: every way a turnout job can go wrong, and what each one means.

Exception hierarchy::

    TurnoutError
    ├── InvalidRequest            bad input, rejected by the producer before anything is enqueued
    │   ├── UnknownModel          (producers.openai_format) ``model`` names no policy, deployment
    │   │                         or alias: ``turnout serve`` answers 404, as OpenAI does
    │   └── BatchInputError       (producers.batch_plan) a batch cannot start: its input, or its
    │                             output, is wrong or in use; nothing was enqueued
    ├── ConfigError               the YAML config or the environment is wrong (names file, key, fix)
    ├── SubmitError               a valid job could not be stored or enqueued (Redis unreachable)
    │   └── RedisUnavailable      Redis did not answer for the producer's patience (a submit,
    │                             a wait or a read gave up; TURNOUT_REDIS_PATIENCE_S)
    ├── JobNotFound               (also a LookupError) no job has this id: never submitted, expired
    ├── JobFailed                 Client.complete(): the job ended failed; carries its result
    ├── JobTimeout                (also a TimeoutError) a wait for a job ran out before it finished
    └── ProviderError             one failed call to one deployment; its class decides what's next
        ├── RateLimited           rate_limited      retry the same deployment after Retry-After
        ├── Overloaded            overloaded        retry with backoff, then fail over
        │   └── ReplyBudgetExhausted  overloaded    the same, but this worker is the one
        │                             overloaded (its reply budget is spent): moves no breaker
        ├── ServerError           server_error      retry with backoff, then fail over
        ├── ProviderTimeout       timeout           retry with backoff, then fail over
        ├── ConnectionFailed      connection        retry with backoff, then fail over
        │   └── AddressUnreachable    connection    the same, but refused or no such host: a
        │                             wrong URL; a job does not wait for its breaker
        ├── AuthFailed            auth              fail over: this credential is wrong
        ├── PermissionDenied      permission        fail over
        ├── ModelNotFound         model_not_found   fail over
        ├── UnsupportedParameter  unsupported_parameter  this model refuses a parameter the
        │                             request sets (``param``): retried once without it, else
        │                             fail over; moves no breaker (the route is healthy)
        ├── ContextLength         context_length    fail over: another deployment may fit it
        ├── ContentPolicy         content_policy    fail over
        ├── InvalidResponse       invalid_response  fail over: the provider broke its protocol
        ├── Incomplete            incomplete        fail over: a 200 that carries no answer (a
        │                         reasoning model spent max_tokens thinking); the route is
        │                         healthy, so its breaker does not count it
        ├── InvalidOutput         invalid_output    retry, then fail over: the reply is not the
        │                         JSON the request's json_schema asks for; moves no breaker
        ├── Misconfigured         configuration     fail over: the route's address is not the
        │                         provider's API (a 404 in no shape of the provider's): its
        │                         breaker opens with the URL as its reason, until a probe passes
        └── BadRequest            bad_request       fail the job: the request is wrong everywhere

Only failures of the route itself move its breaker: an error whose ``route_at_fault`` is False
(the worker's own condition) counts for nothing there, whatever its class.

A job that fails carries one ``ErrorClass``: the class of its deciding provider error, or one of
the job-level classes (``deadline_exceeded``, ``no_candidates``, ``worker_lost``, ``internal``).
"""

from __future__ import annotations

from enum import Enum, StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from routing.models import CompletionResult, Waiting


class ErrorClass(StrEnum):
    RATE_LIMITED = "rate_limited"
    OVERLOADED = "overloaded"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    AUTH = "auth"
    PERMISSION = "permission"
    MODEL_NOT_FOUND = "model_not_found"
    UNSUPPORTED_PARAMETER = "unsupported_parameter"
    BAD_REQUEST = "bad_request"
    CONTEXT_LENGTH = "context_length"
    CONTENT_POLICY = "content_policy"
    INVALID_RESPONSE = "invalid_response"
    INCOMPLETE = "incomplete"
    #: The reply is not JSON, or does not match the request's json_schema.
    INVALID_OUTPUT = "invalid_output"
    CONFIGURATION = "configuration"
    # Job-level classes: no single provider call decided these.
    DEADLINE_EXCEEDED = "deadline_exceeded"
    NO_CANDIDATES = "no_candidates"
    #: Every target's breaker open or its limit spent, and the policy says not to wait.
    ALL_UNAVAILABLE = "all_unavailable"
    WORKER_LOST = "worker_lost"
    INTERNAL = "internal"


class Disposition(Enum):
    """What the worker does after a provider error of a given class."""

    RETRY_THEN_FAILOVER = "retry_then_failover"
    FAILOVER = "failover"
    FAIL_JOB = "fail_job"


_RETRYABLE = frozenset(
    {
        ErrorClass.RATE_LIMITED,
        ErrorClass.OVERLOADED,
        ErrorClass.SERVER_ERROR,
        ErrorClass.TIMEOUT,
        ErrorClass.CONNECTION,
        # a model's output differs from one call to the next: another try may match the schema
        ErrorClass.INVALID_OUTPUT,
    }
)


def disposition(error_class: ErrorClass) -> Disposition:
    """Transient classes are retried on the same deployment first; a malformed request fails the
    job at once (every provider would refuse it); everything else moves to the next target."""
    if error_class in _RETRYABLE:
        return Disposition.RETRY_THEN_FAILOVER
    if error_class is ErrorClass.BAD_REQUEST:
        return Disposition.FAIL_JOB
    return Disposition.FAILOVER


class TurnoutError(Exception):
    """Base of every error turnout raises on purpose."""


class InvalidRequest(TurnoutError, ValueError):
    """The caller's input is wrong; nothing was enqueued. ``param`` names the field at fault
    (``messages.0.content``, ``stream``), when one is: the HTTP front answers with it."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class ConfigError(TurnoutError):
    """The config file or environment is wrong. The message names the file, the key and the fix."""


class SubmitError(TurnoutError):
    """The job was valid but could not be handed to the queue (Redis unreachable). Nothing of it
    is left behind: a job stored but not enqueued is deleted again, so submitting once more is
    safe (and with an ``idempotency_key``, safe whatever happened)."""


class RedisUnavailable(SubmitError):
    """Redis did not answer for as long as the producer rides it out (TURNOUT_REDIS_PATIENCE_S,
    ``turnout batch --redis-patience``): a submit, a wait or a read gave up. The message names
    Redis by host and port, never by a URL's password. ``job_id``: set by a submit that had
    stored its job when Redis went (it may run; submitting again with the same
    ``idempotency_key`` finds it); None when nothing was stored, and for waits and reads."""

    def __init__(self, message: str, *, job_id: str | None = None) -> None:
        super().__init__(message)
        self.job_id = job_id


class JobNotFound(TurnoutError, LookupError):
    """No job has this id: it was never submitted, or its record expired (``TURNOUT_JOB_TTL``).
    A lookup that found nothing, not bad input: ``turnout serve`` answers 404 and ``turnout show``
    exits 2, as for any id the caller got wrong."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job {job_id} (never submitted, or expired)")
        self.job_id = job_id


class JobTimeout(TurnoutError, TimeoutError):
    """Waiting for a job ran out of time; the job itself may still finish later. ``waiting``:
    what the job waits for, when every route refuses it for now."""

    def __init__(self, job_id: str, timeout: float, *, waiting: Waiting | None = None) -> None:
        detail = (
            f"; it is queued, waiting for {waiting.describe()}"
            if waiting is not None
            else "; it may still finish"
        )
        super().__init__(f"job {job_id} did not finish within {timeout:g}s{detail}")
        self.job_id = job_id
        self.waiting = waiting


class JobFailed(TurnoutError):
    """``Client.complete`` raises this for a job that ended ``failed``; see ``.result``."""

    def __init__(self, result: CompletionResult) -> None:
        error = result.error
        detail = f"{error.error_class}: {error.message}" if error else "unknown error"
        super().__init__(f"job {result.job_id} failed: {detail}")
        self.result = result


class ProviderError(TurnoutError):
    """One call to one deployment failed. Messages must already be free of secrets."""

    error_class: ClassVar[ErrorClass] = ErrorClass.SERVER_ERROR
    #: False: the call failed for a reason of the worker's, not the route's; its breaker
    #: ignores it (routing.routes.CallOutcome).
    route_at_fault: ClassVar[bool] = True

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        retry_after_s: float | None = None,
        provider_code: str | None = None,
        should_retry: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.retry_after_s = retry_after_s
        self.provider_code = provider_code
        #: The provider's own verdict (``x-should-retry``), when it gave one.
        self.should_retry = should_retry

    @property
    def open_reason(self) -> str:
        """Why the route's breaker opens when this error opens it at once ("" for the
        breaker's own words, ``credential rejected``)."""
        return ""

    @property
    def disposition(self) -> Disposition:
        if self.should_retry is False and disposition(self.error_class) is (
            Disposition.RETRY_THEN_FAILOVER
        ):
            return Disposition.FAILOVER
        return disposition(self.error_class)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, status_code={self.status_code}, "
            f"retry_after_s={self.retry_after_s})"
        )


class RateLimited(ProviderError):
    error_class = ErrorClass.RATE_LIMITED


class Overloaded(ProviderError):
    error_class = ErrorClass.OVERLOADED


class ReplyBudgetExhausted(Overloaded):
    """The reply would take this worker past its budget for reply bodies
    (``TURNOUT_REPLY_BUDGET_MB``, workers.reply_budget): other calls hold it right now.

    Overloaded because that is what happens next, and rightly: a retry after a backoff finds
    the budget freed as the other calls end. But the worker is what is overloaded, not the
    provider, whose reply may be fine: the route's breaker does not count it.
    """

    route_at_fault = False


class ServerError(ProviderError):
    error_class = ErrorClass.SERVER_ERROR


class ProviderTimeout(ProviderError):
    error_class = ErrorClass.TIMEOUT


class ConnectionFailed(ProviderError):
    error_class = ErrorClass.CONNECTION


class AddressUnreachable(ConnectionFailed):
    """Nothing answers at the route's address: the connection was refused, or its host name
    does not exist. A wrong base URL, which no cool-down mends: a job retries it like any
    connection error, but does not wait for its breaker to re-open (design invariant 7)."""


class AuthFailed(ProviderError):
    error_class = ErrorClass.AUTH


class PermissionDenied(ProviderError):
    error_class = ErrorClass.PERMISSION


class ModelNotFound(ProviderError):
    error_class = ErrorClass.MODEL_NOT_FOUND


class UnsupportedParameter(ProviderError):
    """The model refuses a parameter the request sets (``param``: ``temperature``, ``stop``, or
    ``assistant_prefill`` for a conversation ending with an assistant turn; None when the reply
    did not say which). The request is fine for other models and the route is healthy: its
    breaker ignores it, and the job retries without the parameter or fails over."""

    error_class = ErrorClass.UNSUPPORTED_PARAMETER
    route_at_fault = False

    def __init__(self, message: str, *, param: str | None = None, **details: Any) -> None:
        super().__init__(message, **details)
        self.param = param


class BadRequest(ProviderError):
    error_class = ErrorClass.BAD_REQUEST


class ContextLength(ProviderError):
    error_class = ErrorClass.CONTEXT_LENGTH


class ContentPolicy(ProviderError):
    error_class = ErrorClass.CONTENT_POLICY


class InvalidResponse(ProviderError):
    error_class = ErrorClass.INVALID_RESPONSE


class Incomplete(ProviderError):
    """A well-formed 200 with no answer in it: the output budget ran out before any text
    (OpenAI's ``content: ""`` with ``finish_reason: length``, Gemini's MAX_TOKENS with only
    thoughts). Not a success with empty text, and not the route's fault: another target (or a
    larger ``max_tokens``) may answer, and its breaker does not count it."""

    error_class = ErrorClass.INCOMPLETE


class InvalidOutput(ProviderError):
    """A well-formed 200 whose answer is not the JSON its request's json_schema asks for (not
    JSON at all, or not matching). The model's output varies from call to call, so it is
    retried and failed over like a transient error; but the route served the call, so its
    breaker does not count it."""

    error_class = ErrorClass.INVALID_OUTPUT
    route_at_fault = False


class Misconfigured(ProviderError):
    """The route's address answers, but not as the provider's API: a 404 that is none of the
    provider's error bodies (an HTML page, a proxy's text, "Invalid URL"). A wrong base URL,
    which no cool-down mends; the message names the URL (never a key) and is what the route's
    breaker shows as the reason it opened (``open_reason``)."""

    error_class = ErrorClass.CONFIGURATION

    @property
    def open_reason(self) -> str:
        return f"misconfigured: {self.message}"


PROVIDER_ERRORS: dict[ErrorClass, type[ProviderError]] = {
    cls.error_class: cls
    for cls in (
        RateLimited,
        Overloaded,
        ServerError,
        ProviderTimeout,
        ConnectionFailed,
        AuthFailed,
        PermissionDenied,
        ModelNotFound,
        UnsupportedParameter,
        BadRequest,
        ContextLength,
        ContentPolicy,
        InvalidResponse,
        Incomplete,
        InvalidOutput,
        Misconfigured,
    )
}


def provider_error(
    error_class: ErrorClass,
    message: str,
    *,
    status_code: int | None = None,
    retry_after_s: float | None = None,
    provider_code: str | None = None,
    should_retry: bool | None = None,
) -> ProviderError:
    """Build the ProviderError subclass for ``error_class``."""
    return PROVIDER_ERRORS[error_class](
        message,
        status_code=status_code,
        retry_after_s=retry_after_s,
        provider_code=provider_code,
        should_retry=should_retry,
    )
