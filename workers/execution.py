"""Running one job along its plan: retries on a deployment, failover between deployments.

Pure logic with its I/O injected (the provider call, the attempt recorder, the clock and sleep),
so every retry and failover rule is tested without a server or a worker.

For each candidate, in plan order:
  * transient errors (rate_limited, overloaded, server_error, timeout, connection) are retried on
    the same deployment, ``retries_per_target`` times (or the provider's own default), with the
    policy's backoff; a Retry-After
    longer than ``retry_after_max_s`` moves on at once instead of waiting;
  * bad_request fails the job at once: every provider would refuse the same request;
  * anything else (auth, model_not_found, context_length, ...) moves to the next candidate.
Nothing waits past the job's deadline. Every attempt is recorded before the next one starts, so
a worker that dies mid-job leaves the attempts it made in the log.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt
from tenacity.stop import stop_base

from routing.config import DeploymentConfig
from routing.errors import Disposition, ErrorClass, ProviderError
from routing.models import (
    Attempt,
    CompletionRequest,
    JobError,
    JobState,
    ProviderCompletion,
    RoutingPolicy,
)
from routing.planning import Plan

#: An attempt with less time than this left is not started.
MIN_ATTEMPT_S = 0.05

CallDeployment = Callable[[DeploymentConfig, CompletionRequest, float], ProviderCompletion]


@dataclass(frozen=True)
class ExecutionResult:
    state: JobState
    deployment: DeploymentConfig | None = None
    completion: ProviderCompletion | None = None
    error: JobError | None = None
    #: Attempts not yet written to the job record: they go with the finish, in one round trip.
    unrecorded: list[Attempt] = field(default_factory=list)

    def outcome_fields(self) -> dict[str, Any]:
        """The job-record fields this execution decided (see CompletionResult)."""
        if self.completion is None or self.deployment is None:
            error = self.error.model_dump(mode="json", by_alias=True) if self.error else None
            return {"error": error}
        usage = self.completion.usage
        return {
            "text": self.completion.text,
            "finish_reason": self.completion.finish_reason,
            "provider_finish_reason": self.completion.provider_finish_reason,
            "deployment": self.deployment.id,
            "provider": self.deployment.provider,
            "model": self.completion.model or self.deployment.model,
            "usage": usage.model_dump(mode="json") if usage else None,
            "cost_usd": (
                self.deployment.cost_usd(usage.prompt_tokens, usage.completion_tokens)
                if usage
                else None
            ),
        }


class _DeadlineReached(Exception):
    """No time left for another attempt."""


class _StopBeforeDeadline(stop_base):
    """Stop retrying when the next wait would leave no time for another attempt."""

    def __init__(self, deadline: float, clock: Callable[[], float]) -> None:
        self.deadline = deadline
        self.clock = clock

    def __call__(self, state: RetryCallState) -> bool:
        return self.clock() + state.upcoming_sleep + MIN_ATTEMPT_S >= self.deadline


_JITTER = random.Random()


class _AttemptLog:
    """Holds the latest attempt until another one is about to start, then writes it."""

    def __init__(self, record: Callable[[Attempt], None]) -> None:
        self._record = record
        self._pending: Attempt | None = None

    def add(self, attempt: Attempt) -> None:
        self.flush()
        self._pending = attempt

    def flush(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self._record(pending)

    def unrecorded(self) -> list[Attempt]:
        return [self._pending] if self._pending is not None else []


def execute_job(
    request: CompletionRequest,
    policy: RoutingPolicy,
    plan: Plan,
    *,
    call: CallDeployment,
    record_attempt: Callable[[Attempt], None],
    retries_for: Callable[[DeploymentConfig], int] = lambda _deployment: 1,
    redact: Callable[[str], str] = str,
    run: int = 1,
    clock: Callable[[], float] = time.monotonic,
    now: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> ExecutionResult:
    jitter = rng or _JITTER
    deadline = clock() + policy.deadline_s
    log = _AttemptLog(record_attempt)

    def attempt(deployment: DeploymentConfig) -> ProviderCompletion:
        log.flush()
        timeout = min(policy.attempt_timeout_s, deadline - clock())
        if timeout < MIN_ATTEMPT_S:
            raise _DeadlineReached
        started_at, started = now(), clock()
        try:
            completion = call(deployment, request, timeout)
        except ProviderError as exc:
            log.add(_attempt(deployment, run, started_at, clock() - started, exc, redact))
            raise
        log.add(_attempt(deployment, run, started_at, clock() - started, None, redact))
        return completion

    def retryable(exc: BaseException) -> bool:
        return (
            isinstance(exc, ProviderError)
            and exc.disposition is Disposition.RETRY_THEN_FAILOVER
            and (exc.retry_after_s is None or exc.retry_after_s <= policy.retry_after_max_s)
        )

    def backoff(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, ProviderError) and exc.retry_after_s is not None:
            return exc.retry_after_s
        ceiling = min(policy.backoff_max_s, policy.backoff_base_s * 2 ** (state.attempt_number - 1))
        return jitter.uniform(0, ceiling)

    last_error: ProviderError | None = None
    out_of_deadline = False
    for deployment in plan.candidates:
        retries = policy.retries_per_target
        if retries is None:
            retries = retries_for(deployment)
        retrying = Retrying(
            stop=stop_after_attempt(retries + 1) | _StopBeforeDeadline(deadline, clock),
            wait=backoff,
            retry=retry_if_exception(retryable),
            sleep=sleep,
            before_sleep=lambda _state: log.flush(),
            reraise=True,
        )
        try:
            completion = retrying(attempt, deployment)
        except _DeadlineReached:
            out_of_deadline = True
            break
        except ProviderError as exc:
            last_error = exc
            if exc.disposition is Disposition.FAIL_JOB:
                return _failed(exc.error_class, redact(exc.message), log)
            continue
        return ExecutionResult(
            JobState.SUCCEEDED,
            deployment=deployment,
            completion=completion,
            unrecorded=log.unrecorded(),
        )
    return _failed(*_final_error(policy, plan, last_error, out_of_deadline, redact), log)


def _final_error(
    policy: RoutingPolicy,
    plan: Plan,
    last: ProviderError | None,
    out_of_deadline: bool,
    redact: Callable[[str], str],
) -> tuple[ErrorClass, str]:
    if not plan.candidates:
        return ErrorClass.NO_CANDIDATES, (
            "none of the policy's targets is configured on this worker: "
            + ", ".join(plan.missing or policy.targets)
        )
    if last is None or out_of_deadline:
        detail = f"; last error: {redact(last.message)}" if last else ""
        return ErrorClass.DEADLINE_EXCEEDED, f"deadline of {policy.deadline_s:g}s reached{detail}"
    tried = len(plan.candidates)
    return last.error_class, (
        f"{'all ' + str(tried) + ' targets' if tried > 1 else 'the only target'} failed; "
        f"last: {redact(last.message)}"
    )


def _failed(error_class: ErrorClass, message: str, log: _AttemptLog) -> ExecutionResult:
    return ExecutionResult(
        JobState.FAILED,
        error=JobError(error_class=error_class, message=message),
        unrecorded=log.unrecorded(),
    )


def _attempt(
    deployment: DeploymentConfig,
    run: int,
    started_at: float,
    elapsed_s: float,
    error: ProviderError | None,
    redact: Callable[[str], str],
) -> Attempt:
    return Attempt(
        deployment=deployment.id,
        provider=deployment.provider,
        model=deployment.model,
        outcome="ok" if error is None else error.error_class,
        status_code=200 if error is None else error.status_code,
        latency_ms=round(elapsed_s * 1000, 2),
        retry_after_s=None if error is None else error.retry_after_s,
        message=None if error is None else redact(error.message),
        run=run,
        started_at=started_at,
    )
