"""Running one job along its plan: routes chosen through the router, retries, failover.

Pure logic with its I/O injected (the router, the provider call, the attempt recorder, the clock
and sleep), so every rule is tested without a server or a worker.

Each round asks the router (one Redis round trip) for the first route of those left that its
breaker and rate limits allow; the router says why it passed over the others, and the attempt log
records each reason once. On that route:
  * transient errors (rate_limited, overloaded, server_error, timeout, connection) are retried
    with tenacity, ``retries[class]`` or ``retries_per_target`` times (or the provider's default),
    with the policy's backoff; every retry asks the router again for just that route, so a breaker
    another worker opened meanwhile moves the job on instead of retrying into it. A Retry-After of
    any of these classes is honoured: up to ``short_wait_s`` in place; longer, up to
    ``retry_after_max_s`` and within the deadline, by keeping the route, which cools fleet-wide
    that long (routing.breaker), while the job tries the others or waits (rescheduled if long);
    longer still, it moves on at once. Each call counts against the same budget, which holds
    across reschedules: the calls each route had and the routes done with are carried in the job
    record (``SpentBudget``), not in the run;
  * bad_request fails the job (every provider would refuse the same request); so does
    content_policy unless ``content_policy_fallback``;
  * unsupported_parameter (this model refuses a parameter the request sets): the lesson is kept
    fleet-wide (``lessons``), and the route is called once more at once without it, or passed
    over (prefill, or the policy's ``unsupported_parameters`` says ``skip``; ``fail`` fails the
    job). Before every call the request is fitted to the route's model (routing.request_fit):
    what it is known to refuse is dropped (the attempt says so) or rules the route out;
  * invalid_output (the reply is not the JSON the request's json_schema asks for, checked
    here unless the policy's ``check_output`` is off) is retried like a transient error, then
    fails over; it moves no breaker;
  * context_length moves on to routes with a larger context window only;
  * anything else moves on to the next route.
When no route is available, the job waits for the earliest to return (``on_all_unavailable:
wait``) if that is soon, is rescheduled (its worker slot freed) if it is later but within the
deadline, and fails as all_unavailable otherwise. Nothing waits past the deadline, and nothing
waits for a route that does not heal by itself (design invariant 7): one whose breaker opened on
a rejected credential (it stays open until a probe succeeds), one whose failback is manual, one
whose breaker opened on failures that all found nothing at its address (any job's calls: the
breaker says so, and what they found), and one whose last call in this run found nothing at its
address or had its credential rejected (a wrong base URL, a missing model: its cool-down ends,
but the next call fails the same way).
Routes that do heal: a Retry-After's cool-down, a rate limit's window, a probe in flight, and a
breaker opened by failures for its cool-down. A rescheduled job says what it waits for
(``ExecutionResult.waiting``).

Every failure is recorded with the router at once (the next try depends on it). The success that
ends the run is handed back instead (``ExecutionResult.pending_record``): nothing here needs it
recorded first, so its caller can send it with the job's finish when the router allows
(``Router.rider``).
"""

from __future__ import annotations

import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    wait_exponential,
    wait_random_exponential,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from routing.breaker import opened_until_probe
from routing.capabilities import PARAMETERS
from routing.embeddings import JobRequest, ProviderEmbedding, embedding_outcome
from routing.errors import (
    AddressUnreachable,
    Disposition,
    ErrorClass,
    ProviderError,
    UnsupportedParameter,
)
from routing.models import (
    Attempt,
    CompletionRequest,
    JobError,
    JobState,
    ProviderCompletion,
    RoutingPolicy,
    SkipReason,
    SpentBudget,
    Waiting,
    WaitingRoute,
)
from routing.output_check import checked_output
from routing.planning import Plan, PlannedSkip
from routing.request_fit import Fit, LocalLessons, ParameterLessons, fit_request, parameters_set
from routing.routes import CallOutcome, Grant, KeyLabel, Route, Router, Skip, Spent, Transition

log = logging.getLogger("turnout.breaker")

#: An attempt with less time than this left is not started.
MIN_ATTEMPT_S = 0.05
#: Waiting for a route longer than this frees the worker slot: the job is rescheduled.
SHORT_WAIT_S = 2.0
#: Jobs waiting for the same route wake up to this much apart (and at most 10 % late).
WAKE_JITTER_S = 0.25

#: A provider call: a completion for a chat job, vectors for an embeddings job.
CallRoute = Callable[[Route, JobRequest, float], ProviderCompletion | ProviderEmbedding]


@dataclass(frozen=True)
class ExecutionResult:
    state: JobState
    route: Route | None = None
    completion: ProviderCompletion | ProviderEmbedding | None = None
    error: JobError | None = None
    #: Attempts not yet written to the job record: they go with the finish, in one round trip.
    unrecorded: list[Attempt] = field(default_factory=list)
    #: Set when the job should run again later (state QUEUED): every route is unavailable now.
    retry_in_s: float | None = None
    #: The successful call's breaker record, left to the caller: it ends the run, so it may
    #: ride the job's finish (one round trip for both) when the router says it can.
    pending_record: PendingRecord | None = None
    #: With retry_in_s: the routes the job waits for, why each is out, and until when.
    waiting: Waiting | None = None
    #: With retry_in_s: what the job spent of its retries so far, for its next run.
    spent: SpentBudget | None = None

    def outcome_fields(self) -> dict[str, Any]:
        """The job-record fields this execution decided (see CompletionResult)."""
        if self.completion is None or self.route is None:
            error = self.error.model_dump(mode="json", by_alias=True) if self.error else None
            return {"error": error}
        deployment = self.route.deployment
        usage = self.completion.usage
        if isinstance(self.completion, ProviderEmbedding):
            return embedding_outcome(self.completion, deployment)
        return {
            "text": self.completion.text,
            "finish_reason": self.completion.finish_reason,
            "provider_finish_reason": self.completion.provider_finish_reason,
            "tool_calls": (
                [call.model_dump(mode="json") for call in self.completion.tool_calls]
                if self.completion.tool_calls
                else None
            ),
            "parsed": self.completion.parsed,
            "deployment": deployment.id,
            "provider": deployment.provider,
            "model": self.completion.model or deployment.model,
            "usage": usage.model_dump(mode="json") if usage else None,
            "cost_usd": (
                deployment.cost_usd(usage.prompt_tokens, usage.completion_tokens) if usage else None
            ),
        }


@dataclass(frozen=True)
class CallStarted:
    """A provider call about to go out: what an operator's view of a running job shows."""

    deployment: str
    #: calls the job made so far (every run), this one included
    attempt: int
    #: which delivery of the job this run is
    run: int


@dataclass(frozen=True)
class PendingRecord:
    """A success not yet recorded with the router (see ExecutionResult.pending_record)."""

    grant: Grant
    outcome: CallOutcome


class _DeadlineReached(Exception):
    """No time left for another attempt."""


class _TargetRefuses(Exception):
    """The route's model refuses what the request needs (found at the call: a lesson another
    worker learnt meanwhile); the route was not called."""

    def __init__(self, fit: Fit) -> None:
        super().__init__(fit.detail)
        self.fit = fit


class _RouteUnavailable(Exception):
    """The router would not give this route for a retry (its breaker opened meanwhile)."""

    def __init__(self, skips: list[Skip]) -> None:
        super().__init__("route unavailable")
        self.skips = skips


class _StopAfterRetries(stop_base):
    """Stop when this route has had the retries its last error's class allows, or when the next
    wait would leave no time for another attempt."""

    def __init__(
        self,
        allowed: Callable[[ErrorClass], int],
        calls: Callable[[], int],
        deadline: float,
        clock: Callable[[], float],
    ) -> None:
        self.allowed = allowed
        self.calls = calls
        self.deadline = deadline
        self.clock = clock

    def __call__(self, state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        if not isinstance(exc, ProviderError):
            return True
        if self.calls() >= self.allowed(exc.error_class):
            return True
        return self.clock() + state.upcoming_sleep + MIN_ATTEMPT_S >= self.deadline


class _Backoff(wait_base):
    """The provider's Retry-After when it named one; the policy's backoff otherwise."""

    def __init__(self, policy: RoutingPolicy) -> None:
        base, cap = policy.backoff_base_s, policy.backoff_max_s
        self.jitter = policy.backoff_jitter
        self.full = wait_random_exponential(multiplier=base, max=cap)
        self.plain = wait_exponential(multiplier=base, max=cap)

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, ProviderError) and exc.retry_after_s is not None:
            return exc.retry_after_s
        if self.jitter == "full":
            return float(self.full(state))
        plain = float(self.plain(state))
        if self.jitter == "equal":
            return plain / 2 + random.uniform(0, plain / 2)
        return plain


class _AttemptLog:
    """Holds attempts until another call is about to start, then writes them in one go."""

    def __init__(self, record: Callable[[list[Attempt]], None]) -> None:
        self._record = record
        self._pending: list[Attempt] = []
        self._explained: set[tuple[str, str]] = set()

    def add(self, attempt: Attempt) -> None:
        self._pending.append(attempt)

    def explain(self, key: tuple[str, str], attempt: Attempt) -> None:
        """A passed-over route, once per route and reason."""
        if key not in self._explained:
            self._explained.add(key)
            self._pending.append(attempt)

    def flush(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, []
            self._record(pending)

    def flush_calls(self) -> None:
        """Write what is held if it includes a call (worth keeping should this worker die during
        the next one); targets passed over alone wait for the finish, saving a round trip."""
        if any(attempt.outcome != "skipped" for attempt in self._pending):
            self.flush()

    def unrecorded(self) -> list[Attempt]:
        return list(self._pending)


@dataclass
class _Job:
    """Everything one run of one job shares between its rounds."""

    request: JobRequest
    policy: RoutingPolicy
    router: Router
    call: CallRoute
    default_retries: Callable[[Route], int]
    redact: Callable[[str], str]
    run: int
    clock: Callable[[], float]
    now: Callable[[], float]
    deadline: float
    tokens: int
    log: _AttemptLog
    on_transition: Callable[[Transition], None]
    short_wait_s: float = SHORT_WAIT_S
    pending: PendingRecord | None = None
    on_call: Callable[[CallStarted], None] | None = None
    #: calls made on each route by this job, its earlier runs' included (retries and returns
    #: after a cool-down)
    calls_on: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    #: routes this job is done with, in this run or an earlier one
    dropped: set[str] = field(default_factory=set)
    #: route id -> its last call's error, when that error is one no cool-down mends
    will_not_heal: dict[str, str] = field(default_factory=dict)
    lessons: ParameterLessons = field(default_factory=LocalLessons)
    #: the route to call again at once, without the parameter it just refused
    again: Route | None = None
    #: (route id, parameter): retried once without it already
    retried_without: set[tuple[str, str]] = field(default_factory=set)
    #: why the last route ruled out by its model's refusals was (for the job's error)
    refusal: str | None = None

    @property
    def sets_parameters(self) -> bool:
        """The request sets a parameter some model may refuse (or ends with a prefill)."""
        if not isinstance(self.request, CompletionRequest):
            return False  # an embeddings job sets none of the parameters models refuse
        return bool(parameters_set(self.request))

    def fit(self, route: Route) -> Fit | None:
        """The request as the route's model takes it; None for an embeddings job, which sets
        nothing a model refuses and is sent as it is."""
        if not isinstance(self.request, CompletionRequest):
            return None
        if not self.sets_parameters:
            return Fit(self.request)  # nothing to fit: no lesson to read
        deployment = route.deployment
        return fit_request(
            self.request,
            deployment,
            mode=self.policy.unsupported_parameters,
            learnt=self.lessons.refused(deployment),
        )

    #: the key a route's next call carries, for its usage per key (None: not counted)
    key_of: Callable[[Route], KeyLabel | None] | None = None


def execute_job(
    request: JobRequest,
    policy: RoutingPolicy,
    plan: Plan,
    *,
    router: Router,
    call: CallRoute,
    record_attempts: Callable[[list[Attempt]], None],
    deadline_s: float | None = None,
    prompt_tokens: int = 0,
    default_retries: Callable[[Route], int] = lambda _route: 1,
    redact: Callable[[str], str] = str,
    run: int = 1,
    clock: Callable[[], float] = time.monotonic,
    now: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    short_wait_s: float = SHORT_WAIT_S,
    on_transition: Callable[[Transition], None] | None = None,
    on_call: Callable[[CallStarted], None] | None = None,
    lessons: ParameterLessons | None = None,
    key_of: Callable[[Route], KeyLabel | None] | None = None,
    spent: SpentBudget | None = None,
) -> ExecutionResult:
    """Run one job (one run of it: ``run`` says which delivery) along its plan. ``spent``: what
    its earlier runs spent, so a rescheduled job's budget goes on where it stopped."""
    job = _Job(
        request,
        policy,
        router,
        call,
        default_retries,
        redact,
        run,
        clock,
        now,
        deadline=clock() + (policy.deadline_s if deadline_s is None else deadline_s),
        tokens=prompt_tokens + (request.max_tokens or 0),
        log=_AttemptLog(record_attempts),
        on_transition=on_transition or log_transition,
        short_wait_s=short_wait_s,
        on_call=on_call,
        lessons=lessons or LocalLessons(),
        key_of=key_of,
    )
    if spent is not None:
        job.calls_on.update(spent.calls)
        job.dropped.update(spent.dropped)
    for planned in plan.skipped:
        job.log.explain((planned.target, planned.reason), _planned_skip(job, planned))
    remaining: list[Route] = [r for r in plan.routes if r.id not in job.dropped]
    last_error: ProviderError | None = None
    last_failure = ""
    out_of_time = False
    while remaining:
        if job.deadline - clock() < MIN_ATTEMPT_S:
            out_of_time = True
            break
        remaining, refused = _fitting_routes(job, remaining)
        if refused is not None:
            return refused
        if not remaining:
            break
        again, job.again = job.again, None
        first = [again] if again in remaining else []
        acquired = router.acquire(
            [*first, *(r for r in remaining if r is not again)],
            order="given" if first else plan.order,
            tokens=job.tokens,
            hold_s=_attempt_timeout(job),
        )
        for transition in acquired.transitions:
            job.on_transition(transition)
        _explain(job, acquired.skips)
        if acquired.grant is None:
            waited = _wait_for_a_route(job, acquired.skips, sleep, short_wait_s)
            if isinstance(waited, ExecutionResult):
                return waited
            continue
        route = acquired.grant.route
        try:
            completion = _run_route(job, acquired.grant, sleep)
        except _DeadlineReached:
            out_of_time = True
            break
        except _RouteUnavailable as unavailable:
            _explain(job, unavailable.skips)
            continue  # the next round picks from what is left, this route included
        except _TargetRefuses:
            continue  # the next round's fitting passes it over (or fails the job)
        except UnsupportedParameter as exc:
            last_error = exc
            after = _after_refusal(job, route, exc)
            if isinstance(after, ExecutionResult):
                return after
            if after == "again":
                job.again = route
            else:
                remaining = [r for r in remaining if r is not route]
            continue
        except ProviderError as exc:
            last_error = exc
            disposition = exc.disposition
            if disposition is Disposition.FAIL_JOB or (
                exc.error_class is ErrorClass.CONTENT_POLICY and not policy.content_policy_fallback
            ):
                return _failed(exc.error_class, redact(exc.message), job.log)
            if _worth_waiting_for(job, route, exc):
                continue  # it cools fleet-wide for its Retry-After: others first, then it again
            last_failure = _why_dropped(job, route, exc)
            left = _after_failure(job, remaining, route, exc)
            job.dropped.update(r.id for r in remaining if r not in left)
            remaining = left
            continue
        return ExecutionResult(
            JobState.SUCCEEDED,
            route=route,
            completion=completion,
            unrecorded=job.log.unrecorded(),
            pending_record=job.pending,
        )
    if last_error is None and not out_of_time and job.refusal is not None:
        return _failed(
            ErrorClass.UNSUPPORTED_PARAMETER,
            f"no target accepts this request: {job.refusal}",
            job.log,
        )
    return _failed(
        *_final_error(policy, plan, last_error, last_failure, out_of_time, redact), job.log
    )


def _fitting_routes(
    job: _Job, remaining: list[Route]
) -> tuple[list[Route], ExecutionResult | None]:
    """The routes whose models can take the request (dropping what they refuse, where the
    policy allows); the others are passed over, once each, or fail the job (``fail``)."""
    fitting = []
    for route in remaining:
        fit = job.fit(route)
        if fit is None or fit.refused is None:
            fitting.append(route)
            continue
        job.refusal = f"{route.deployment.id}: {fit.detail}"
        if fit.fails_job:
            return [], _failed(
                ErrorClass.UNSUPPORTED_PARAMETER, f"{route.deployment.id}: {fit.detail}", job.log
            )
        job.log.explain(
            (route.id, "unsupported_parameter"),
            _skip_attempt(job, route, "unsupported_parameter", fit.detail),
        )
    return fitting, None


def _after_refusal(job: _Job, route: Route, exc: UnsupportedParameter) -> ExecutionResult | str:
    """After a model refused a parameter: keep the lesson for the fleet, then "again" (call the
    route once more without it), "failover", or the job's failure (``fail``)."""
    param = exc.param
    if (
        param is None
        or not isinstance(job.request, CompletionRequest)
        or param not in parameters_set(job.request)
    ):
        return "failover"  # a refusal it did not name, or of something turnout did not send
    deployment = route.deployment
    job.lessons.learn(deployment, param, job.redact(exc.message))
    if job.policy.unsupported_parameters == "fail":
        return _failed(
            ErrorClass.UNSUPPORTED_PARAMETER,
            f"{deployment.id}: {job.redact(exc.message)} (unsupported_parameters: fail)",
            job.log,
        )
    droppable = param in PARAMETERS and job.policy.unsupported_parameters == "drop"
    if droppable and (route.id, param) not in job.retried_without:
        job.retried_without.add((route.id, param))
        return "again"
    return "failover"


def _run_route(
    job: _Job, grant: Grant, sleep: Callable[[float], None]
) -> ProviderCompletion | ProviderEmbedding:
    """Call one route, retrying transient errors on it as the policy allows."""
    route = grant.route
    grants = [grant]

    def attempt() -> ProviderCompletion | ProviderEmbedding:
        job.log.flush_calls()
        timeout = _attempt_timeout(job)
        if timeout < MIN_ATTEMPT_S:
            if grants:
                job.router.release(grants.pop())  # its probe permit must not wait for a TTL
            raise _DeadlineReached
        current = grants.pop() if grants else _reacquire(job, route)
        return _call(job, current, timeout)

    def retryable(exc: BaseException) -> bool:
        """Retried in place: a transient error, unless the provider asked for a wait longer than
        a worker slot should be held (``_worth_waiting_for`` decides about that one: the job
        tries the others first, and comes back)."""
        in_place_s = min(job.policy.retry_after_max_s, job.short_wait_s)
        return (
            isinstance(exc, ProviderError)
            and exc.disposition is Disposition.RETRY_THEN_FAILOVER
            and (exc.retry_after_s is None or exc.retry_after_s <= in_place_s)
        )

    # The first call outside tenacity: most succeed, and a Retrying with its stop and wait costs
    # ~40 µs per route even then (measured). A first failure worth retrying is handed to
    # tenacity as its first attempt's outcome (``replayed``), so the stop, the backoff and the
    # attempt count run exactly as if tenacity had made that call.
    try:
        return attempt()
    except Exception as exc:
        if not retryable(exc):
            raise
        first_failure: list[BaseException] = [exc]

    def replayed() -> ProviderCompletion | ProviderEmbedding:
        if first_failure:
            raise first_failure.pop()
        return attempt()

    retrying = Retrying(
        stop=_StopAfterRetries(
            lambda error_class: _allowed_calls(job, route, error_class),
            lambda: job.calls_on[route.id],
            job.deadline,
            job.clock,
        ),
        wait=_Backoff(job.policy),
        retry=retry_if_exception(retryable),
        sleep=sleep,
        before_sleep=lambda _state: job.log.flush_calls(),
        reraise=True,
    )
    completion: ProviderCompletion | ProviderEmbedding = retrying(replayed)
    return completion


def _retries(job: _Job, route: Route, error_class: ErrorClass) -> int:
    """Retries this route gets for this class: the policy's per class, its per target, or the
    provider's own default."""
    per_class = job.policy.retries.get(error_class.value)  # type: ignore[call-overload]
    if per_class is not None:
        return int(per_class)
    if job.policy.retries_per_target is not None:
        return job.policy.retries_per_target
    return job.default_retries(route)


def _worth_waiting_for(job: _Job, route: Route, exc: ProviderError) -> bool:
    """A transient error (429, 500, 503, ...) whose Retry-After is too long to wait in place,
    yet within retry_after_max_s, the deadline and the route's retries: keep the route. The
    router reports it cooling until then (a Retry-After cools its route fleet-wide, whatever
    the class), so the job tries the others, or waits (rescheduled if long), and calls it again
    once it may."""
    wait = exc.retry_after_s
    return (
        exc.disposition is Disposition.RETRY_THEN_FAILOVER
        and wait is not None
        and job.short_wait_s < wait <= job.policy.retry_after_max_s
        and job.clock() + wait + MIN_ATTEMPT_S < job.deadline
        and job.calls_on[route.id] < _allowed_calls(job, route, exc.error_class)
    )


def _allowed_calls(job: _Job, route: Route, error_class: ErrorClass) -> int:
    """Calls a route gets when its calls fail with this class: the first and its retries."""
    return _retries(job, route, error_class) + 1


def _why_dropped(job: _Job, route: Route, exc: ProviderError) -> str:
    """``secondary (3 of 3 calls, Retry-After 3s)``: the route the job gave up on, and why, for
    the job's error when it was the last."""
    calls = job.calls_on[route.id]
    retryable = exc.disposition is Disposition.RETRY_THEN_FAILOVER
    allowed = _allowed_calls(job, route, exc.error_class)
    notes = [
        f"{calls} of {allowed} calls" if retryable else f"{calls} calls" if calls > 1 else "1 call"
    ]
    wait = exc.retry_after_s
    explained = False
    if wait is not None:
        explained = wait > job.policy.retry_after_max_s
        if explained:
            notes.append(f"Retry-After {wait:g}s, over retry_after_max_s")
        elif job.clock() + wait + MIN_ATTEMPT_S >= job.deadline:
            notes.append(f"Retry-After {wait:g}s, past the deadline")
            explained = True
        else:
            notes.append(f"Retry-After {wait:g}s")
    if retryable and calls < allowed and not explained:
        notes.append("no time left before the deadline for another")
    return f"{route.id} ({', '.join(notes)})"


def _attempt_timeout(job: _Job) -> float:
    """The longest the next call may take: the policy's attempt timeout, within the deadline."""
    return min(job.policy.attempt_timeout_s, job.deadline - job.clock())


def _reacquire(job: _Job, route: Route) -> Grant:
    acquired = job.router.acquire(
        [route], order="given", tokens=job.tokens, hold_s=_attempt_timeout(job)
    )
    for transition in acquired.transitions:
        job.on_transition(transition)
    if acquired.grant is None:
        raise _RouteUnavailable(acquired.skips)
    return acquired.grant


def _call(job: _Job, grant: Grant, timeout: float) -> ProviderCompletion | ProviderEmbedding:
    route = grant.route
    fit = job.fit(route)
    if fit is not None and fit.refused is not None:
        job.router.release(grant)
        raise _TargetRefuses(fit)
    started_at, started = job.now(), job.clock()
    error: ProviderError | None = None
    completion: ProviderCompletion | ProviderEmbedding | None = None
    job.calls_on[route.id] += 1
    key = job.key_of(route) if job.key_of is not None else None
    if job.on_call is not None:
        job.on_call(CallStarted(route.deployment.id, sum(job.calls_on.values()), job.run))
    try:
        completion = job.call(route, job.request if fit is None else fit.request, timeout)
        if (
            fit is not None
            and job.policy.check_output
            and isinstance(completion, ProviderCompletion)
        ):
            completion = checked_output(fit.request, completion)
    except ProviderError as exc:
        # Kept without its traceback: the frames it holds hold the reply (and its body) in a
        # cycle with ``error`` until a full collection.
        error = exc.with_traceback(None)
    except BaseException:
        job.router.release(grant)  # a bug or a shutdown: give back its permit and slot
        raise
    latency = job.clock() - started
    if error is not None and not _mends_by_itself(error):
        job.will_not_heal[route.id] = job.redact(error.message)
    else:
        job.will_not_heal.pop(route.id, None)
    usage = completion.usage if completion else None
    used = usage.total_tokens if usage else job.tokens
    spent = (
        Spent(
            usage.prompt_tokens,
            usage.completion_tokens,
            route.deployment.cost_usd(usage.prompt_tokens, usage.completion_tokens),
        )
        if usage
        else None
    )
    outcome = CallOutcome.of(
        error, latency_s=latency, token_delta=used - job.tokens, spent=spent, key=key
    )
    if error is None:
        job.pending = PendingRecord(grant, outcome)
    else:
        transition = job.router.record(grant, outcome)
        if transition is not None:
            job.on_transition(transition)
    note = None if fit is None else fit.note
    job.log.add(_attempt(job, grant, started_at, latency, error, note=note))
    if error is not None:
        raise error
    assert completion is not None
    return completion


def _after_failure(
    job: _Job, remaining: list[Route], route: Route, exc: ProviderError
) -> list[Route]:
    """The routes still worth trying after ``route`` failed for good."""
    left = [r for r in remaining if r is not route]
    if exc.error_class is not ErrorClass.CONTEXT_LENGTH or not job.policy.context_window_fallback:
        return left
    window = route.deployment.model_info.context_window
    if window is None:
        return left
    larger = []
    for other in left:
        other_window = other.deployment.model_info.context_window
        if other_window is not None and other_window <= window:
            job.log.explain(
                (other.id, "smaller_context"),
                _skip_attempt(
                    job,
                    other,
                    "smaller_context",
                    f"{route.deployment.id} ran out of context at {window} tokens; "
                    f"this one holds {other_window}",
                ),
            )
        else:
            larger.append(other)
    return larger


#: Refusals that end by themselves: a Retry-After's cool-down, a rate limit's window, a probe
#: another caller holds.
_PASSING_REFUSALS = frozenset({"cooling", "rate_limited", "no_probe_permit"})
#: Classes whose failure a cool-down does not mend (the breaker opens on them until a probe
#: succeeds).
_CREDENTIAL_CLASSES = frozenset(
    {
        ErrorClass.AUTH,
        ErrorClass.PERMISSION,
        ErrorClass.MODEL_NOT_FOUND,
        ErrorClass.CONFIGURATION,
    }
)


def _mends_by_itself(error: ProviderError) -> bool:
    """False for a failure the next call would meet again whatever the wait: a rejected key, a
    missing model, nothing at the address (a wrong URL)."""
    return not (isinstance(error, AddressUnreachable) or error.error_class in _CREDENTIAL_CLASSES)


def _heals(job: _Job, skip: Skip) -> bool:
    """Whether a passed-over route returns by itself (see the module docstring)."""
    if skip.route.id in job.will_not_heal:
        return False
    if skip.reason in _PASSING_REFUSALS:
        return True
    return (
        skip.reason == "open"
        and skip.retry_at is not None
        and not opened_until_probe(skip.why)
        and not skip.unreachable
    )


def _why_out(job: _Job, skip: Skip) -> str:
    last = job.will_not_heal.get(skip.route.id)
    if last:
        return f"{skip.route.id}: {skip.describe()}; its last call: {last}"
    if skip.unreachable:
        return f"{skip.route.id}: {skip.describe()}; the calls that opened it: {skip.unreachable}"
    return f"{skip.route.id}: {skip.describe()}"


def _waiting(job: _Job, skips: Sequence[Skip], wait_s: float) -> Waiting:
    routes = [
        WaitingRoute(route=s.route.id, reason=s.reason, detail=s.why, until=s.retry_at)
        for s in skips
        if s.reason != "closed"
    ]
    return Waiting(routes=routes, until=job.now() + wait_s)


def _wait_for_a_route(
    job: _Job, skips: Sequence[Skip], sleep: Callable[[float], None], short_wait_s: float
) -> ExecutionResult | None:
    """Every route is unavailable: wait for the earliest to return, reschedule, or fail. Only
    routes that heal by themselves are waited for; with none, the job fails at once."""
    reasons = "; ".join(_why_out(job, s) for s in skips)
    if job.policy.on_all_unavailable == "fail":
        return _failed(
            ErrorClass.ALL_UNAVAILABLE, f"every target is unavailable ({reasons})", job.log
        )
    healing = [s for s in skips if _heals(job, s)]
    if not healing:
        return _failed(
            ErrorClass.ALL_UNAVAILABLE,
            f"no target returns by itself; waiting would not help ({reasons})",
            job.log,
        )
    returns = [s.retry_at for s in healing if s.retry_at is not None]
    wait = max(0.05, min(returns) - job.now()) if returns else short_wait_s
    # Jobs waiting on one route would all wake at the same instant: spread them a little.
    wait += random.uniform(0.0, min(WAKE_JITTER_S, wait * 0.1))
    if job.clock() + wait + MIN_ATTEMPT_S >= job.deadline:
        return _failed(
            ErrorClass.ALL_UNAVAILABLE,
            f"no target returns before the deadline ({reasons})",
            job.log,
        )
    if wait > short_wait_s:
        return ExecutionResult(
            JobState.QUEUED,
            retry_in_s=wait,
            unrecorded=job.log.unrecorded(),
            waiting=_waiting(job, healing, wait),
            spent=SpentBudget(
                calls={route: n for route, n in job.calls_on.items() if n},
                dropped=sorted(job.dropped),
            ),
        )
    job.log.flush_calls()
    sleep(wait)
    return None


def _explain(job: _Job, skips: Sequence[Skip]) -> None:
    for skip in skips:
        reason = skip.reason
        assert reason != "closed", "only a probe acquisition passes a closed route over"
        until = (
            f" until {time.strftime('%H:%M:%S', time.gmtime(skip.retry_at))}Z"
            if (skip.retry_at)
            else ""
        )
        job.log.explain(
            (skip.route.id, reason),
            _skip_attempt(job, skip.route, reason, f"{skip.describe()}{until}"),
        )


def _skip_attempt(job: _Job, route: Route, reason: SkipReason, detail: str) -> Attempt:
    deployment = route.deployment
    return Attempt(
        deployment=deployment.id,
        provider=deployment.provider,
        model=deployment.model,
        outcome="skipped",
        reason=reason,
        message=detail,
        key=route.key_env if len(deployment.key_envs) > 1 else None,
        run=job.run,
        started_at=job.now(),
    )


def _planned_skip(job: _Job, planned: PlannedSkip) -> Attempt:
    deployment = planned.deployment
    return Attempt(
        deployment=deployment.id,
        provider=deployment.provider,
        model=deployment.model,
        outcome="skipped",
        reason=planned.reason,
        message=planned.detail,
        key=planned.key,
        run=job.run,
        started_at=job.now(),
    )


def _final_error(
    policy: RoutingPolicy,
    plan: Plan,
    last: ProviderError | None,
    last_failure: str,
    out_of_time: bool,
    redact: Callable[[str], str],
) -> tuple[ErrorClass, str]:
    if not plan.routes:
        why = "; ".join(f"{s.deployment.id}: {s.detail}" for s in plan.skipped)
        missing = ", ".join(plan.missing)
        detail = why or (f"not configured on this worker: {missing}" if missing else "none")
        return ErrorClass.NO_CANDIDATES, f"no target can take this job ({detail})"
    if last is None and not out_of_time:
        # Every route was given up on by an earlier run of this job (see SpentBudget).
        return ErrorClass.ALL_UNAVAILABLE, "every target failed in an earlier run of this job"
    if last is None or out_of_time:
        detail = f"; last error: {redact(last.message)}" if last else ""
        return ErrorClass.DEADLINE_EXCEEDED, f"deadline of {policy.deadline_s:g}s reached{detail}"
    tried = len({r.deployment.id for r in plan.routes})
    return last.error_class, (
        f"{'all ' + str(tried) + ' targets' if tried > 1 else 'the only target'} failed; "
        f"last: {last_failure + ': ' if last_failure else ''}{redact(last.message)}"
    )


def _failed(error_class: ErrorClass, message: str, log: _AttemptLog) -> ExecutionResult:
    return ExecutionResult(
        JobState.FAILED,
        error=JobError(error_class=error_class, message=message),
        unrecorded=log.unrecorded(),
    )


def _attempt(
    job: _Job,
    grant: Grant,
    started_at: float,
    elapsed_s: float,
    error: ProviderError | None,
    *,
    note: str | None = None,
) -> Attempt:
    """``note``: what the request went without on this route ("dropped temperature: ...")."""
    deployment = grant.route.deployment
    message = None if error is None else job.redact(error.message)
    if note is not None:  # it quotes refusals, another worker's among them: redacted too
        note = job.redact(note)
        message = note if message is None else f"{message} ({note})"
    return Attempt(
        deployment=deployment.id,
        provider=deployment.provider,
        model=deployment.model,
        outcome="ok" if error is None else error.error_class,
        status_code=200 if error is None else error.status_code,
        latency_ms=round(elapsed_s * 1000, 2),
        retry_after_s=None if error is None else error.retry_after_s,
        message=message,
        key=grant.route.key_env if len(deployment.key_envs) > 1 else None,
        probe=grant.probe,
        run=job.run,
        started_at=started_at,
    )


def log_transition(transition: Transition) -> None:
    log.warning(
        "breaker %s: %s (now %s%s)",
        transition.route_id,
        transition.change,
        transition.state,
        f": {transition.reason}" if transition.reason else "",
    )
