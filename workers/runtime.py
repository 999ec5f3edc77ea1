"""What a worker process holds (config, credentials, Redis, HTTP clients) and how it runs a job.

``WorkerRuntime.run_job`` is the whole of a job's life on a worker, as a plain function: the
Celery task only calls it and turns its report into an ack or a retry.
"""

from __future__ import annotations

import logging
import os
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from routing.celery_config import reschedule_countdown_s
from routing.config import TurnoutConfig, load_configured, stored_key_name
from routing.embeddings import (
    EmbeddingRequest,
    JobRequest,
    ProviderEmbedding,
    job_messages,
    planning_policy,
)
from routing.errors import ConfigError, ErrorClass, InvalidResponse, ProviderError
from routing.fallback_router import FallbackRouter
from routing.fleet_router import FleetRouter
from routing.jobstore import Claim, FinishStatus, JobStore, redis_client
from routing.keys import Keys
from routing.kill_window import hold_if_asked
from routing.local_router import LocalRouter
from routing.models import (
    Attempt,
    CompletionRequest,
    JobError,
    JobState,
    ProviderCompletion,
)
from routing.planning import plan_candidates, routes_of, unusable_routes
from routing.request_fit import LocalLessons, ParameterLessons
from routing.routes import KeyLabel, Rider, Route, Router, Transition
from routing.tokens import estimate_prompt_tokens
from workers.alerts import AlertSink, process_source, sink_from_settings
from workers.announce import Announcer
from workers.credentials import record_unusable
from workers.embed_call import call_embedder
from workers.exchange import exchange
from workers.execution import (
    CallStarted,
    ExecutionResult,
    PendingRecord,
    execute_job,
    log_transition,
)
from workers.health import HealthChecker
from workers.http import HttpcoreTransport, HttpTransport
from workers.key_follower import KeyFollower
from workers.key_routes import KeyWithdrawn, StoreBackedRoutes, env_key_labels, follow_key_store
from workers.leases import LeaseKeeper
from workers.malloc_tuning import fix_mmap_threshold
from workers.parameter_lessons import RedisParameterLessons
from workers.providers.base import ProviderAdapter
from workers.providers.registry import build_adapter
from workers.redaction import Redactor, secrets_of
from workers.redis_patience import patiently
from workers.reply_budget import MIB, ReplyBudget, release_body
from workers.settings import WorkerSettings

log = logging.getLogger("turnout.worker")

#: How long before a job whose record could not be reached is tried again.
REDIS_RETRY_S = 2.0
#: How long a worker keeps trying to record a finished job's outcome through Redis errors.
FINISH_PATIENCE_S = 30.0


@dataclass(frozen=True)
class TaskReport:
    """What the Celery task returns (a small summary, never completion text) or waits for."""

    summary: dict[str, Any] = field(default_factory=dict)
    #: Set when another worker holds a live lease on the job: look again after this long.
    retry_in_s: float | None = None
    #: With ``retry_in_s``, when the wait is for routes to return: their ids.
    waiting_for: tuple[str, ...] = ()


def load_worker_config(settings: WorkerSettings) -> TurnoutConfig:
    """The config a worker runs with: valid, and (``TURNOUT_STRICT_CONFIG=1``) with every
    required variable set; otherwise routes missing one are passed over (workers.credentials).
    """
    config = load_configured(settings.config_path)
    if settings.strict_config:
        config.check_credentials(settings.is_set)
    return config


def built_adapters(
    routes: list[Route], settings: WorkerSettings, unusable: dict[str, str]
) -> dict[str, ProviderAdapter]:
    """An adapter per route; a route whose adapter cannot be built (a Bedrock deployment with
    no region anywhere, say) joins ``unusable`` with the reason, like a missing variable:
    the worker still starts and serves the others."""
    adapters: dict[str, ProviderAdapter] = {}
    for route in routes:
        try:
            adapters[route.id] = build_adapter(
                route.deployment.model_copy(update={"api_key_env": route.key_env}), settings
            )
        except ConfigError as exc:
            unusable[route.id] = f"unusable: {exc}"
            log.warning("route %s is out of rotation: %s", route.id, exc)
    return adapters


class WorkerRuntime:
    def __init__(
        self,
        settings: WorkerSettings,
        config: TurnoutConfig,
        *,
        store: JobStore,
        transport: HttpTransport,
        adapters: dict[str, ProviderAdapter],
        redactor: Redactor,
        router: Router | None = None,
        health: HealthChecker | None = None,
        announce: Callable[[Transition], None] = log_transition,
        alerts: AlertSink | None = None,
        unusable: dict[str, str] | None = None,
        lessons: ParameterLessons | None = None,
        key_labels: dict[str, KeyLabel] | None = None,
    ) -> None:
        self.settings = settings
        self.config = config
        self.store = store
        self.transport = transport
        #: route id -> adapter (one per key of a key pool)
        self.adapters = adapters
        self.redact = redactor
        self.router: Router = router or LocalRouter()
        #: Beat's health checks, run by the health_check task (None: not on this stack).
        self.health = health
        #: Breaker transitions this process sees: logged, and alerted (workers.announce).
        self.announce = announce
        self.alerts = alerts
        self.leases = LeaseKeeper(store, lease_s=settings.lease_s)
        #: route id -> why this worker cannot call it (a variable it needs is unset, or its
        #: key store value is missing, revoked or refused): replaced whole on each change
        self.unusable = dict(unusable or {})
        #: what the fleet learnt its models refuse (Redis in a fleet; this process's otherwise)
        self.lessons: ParameterLessons = lessons or LocalLessons()
        self._env_unusable = dict(self.unusable)
        #: route id -> the key its next call carries (counted per key by the fleet router)
        self.key_labels: dict[str, KeyLabel] = dict(key_labels or {})
        self.stored: StoreBackedRoutes | None = None
        self.key_follower: KeyFollower | None = None

    @classmethod
    def build(cls, settings: WorkerSettings | None = None) -> WorkerRuntime:
        settings = settings or WorkerSettings()
        config = load_worker_config(settings)
        unusable = unusable_routes(config, settings.is_set)
        usable = [
            route
            for deployment in config.deployments.values()
            for route in routes_of(deployment, config)
            if route.id not in unusable and stored_key_name(route.key_env) is None
        ]
        adapters = built_adapters(usable, settings, unusable)
        usable = [route for route in usable if route.id in adapters]
        breaker_redis = redis_client(
            settings.breaker_redis_url or settings.redis_url,
            max_connections=settings.worker_concurrency + 16,
            socket_timeout_s=settings.breaker_timeout_s,
            connect_timeout_s=settings.breaker_timeout_s,
        )
        prefix = Keys(settings.namespace).route_prefix
        keys = Keys(settings.namespace)
        fleet = FleetRouter(
            breaker_redis,
            prefix,
            shares_job_store_redis=settings.breaker_redis_url in (None, settings.redis_url),
            key_usage_prefix=keys.key_usage_prefix,
            key_usage_ids=keys.key_usage_ids,
        )
        router = FallbackRouter(fleet, LocalRouter())
        store = JobStore(
            # One connection per thread, and some for the lease keeper and redeliveries.
            redis_client(settings.redis_url, max_connections=settings.worker_concurrency + 16),
            Keys(settings.namespace),
            ttl_s=settings.job_ttl_s,
            requeue_after_s=settings.requeue_after_s,
        )
        fix_mmap_threshold()  # so freed reply bodies leave the process (workers.malloc_tuning)
        transport = HttpcoreTransport(
            connect_timeout_s=settings.connect_timeout_s,
            reply_budget=ReplyBudget(settings.reply_budget_mb * MIB),
        )
        redactor = Redactor(secrets_of(settings, config))
        alerts = sink_from_settings(settings, redact=redactor)
        announce = Announcer(alerts, config, process_source("worker"))
        health = HealthChecker(
            config,
            usable,
            adapters=adapters,
            transport=transport,
            router=router,
            client=breaker_redis,
            prefix=prefix,
            redact=redactor,
            on_transition=announce,
        )
        runtime = cls(
            settings,
            config,
            store=store,
            transport=transport,
            adapters=adapters,
            redactor=redactor,
            router=router,
            health=health,
            announce=announce,
            alerts=alerts,
            unusable=unusable,
            lessons=RedisParameterLessons(
                store.redis, store.keys, ttl_s=settings.parameter_lesson_ttl_s
            ),
            key_labels=env_key_labels(usable, settings),
        )
        runtime.follow_key_store(breaker_redis, prefix)
        return runtime

    def follow_key_store(self, marks: redis.Redis, route_prefix: str) -> None:
        """Give the store-backed routes their keys and keep them current (workers.key_routes);
        each change replaces ``unusable`` whole and marks it for turnout status."""

        def publish(stored: dict[str, str]) -> None:
            self.unusable = {**self._env_unusable, **stored}
            try:
                record_unusable(marks, route_prefix, self.config, self.unusable)
            except redis.RedisError as exc:
                log.warning("unusable routes not recorded in Redis: %s", exc)

        self.stored, self.key_follower = follow_key_store(
            self.settings,
            self.config,
            adapters=self.adapters,
            labels=self.key_labels,
            redactor=self.redact,
            on_change=publish,
        )

    def close(self) -> None:
        if self.key_follower is not None:
            self.key_follower.stop()
        self.leases.stop()
        self.transport.close()
        if self.alerts is not None:
            self.alerts.close()

    def call_route(
        self, route: Route, request: JobRequest, timeout_s: float
    ) -> ProviderCompletion | ProviderEmbedding:
        adapter = self.adapters.get(route.id)
        if adapter is None:
            raise KeyWithdrawn(
                f"{route.id}: its key was withdrawn while the job ran "
                f"({self.unusable.get(route.id, 'no longer usable on this worker')})"
            )
        if isinstance(request, EmbeddingRequest):
            return call_embedder(self.transport, adapter, request, timeout_s)
        deployment = route.deployment
        reply = exchange(self.transport, adapter, request, timeout_s)
        try:
            return adapter.parse_reply(reply)
        except ProviderError as exc:
            # Its traceback holds this frame, and so the body: keep neither past the call.
            raise exc.with_traceback(None) from None
        except Exception as exc:  # a reply the adapter cannot read is the provider's fault
            raise InvalidResponse(
                f"{reply.status} from {deployment.provider} could not be read: "
                f"{type(exc).__name__}: {exc}",
                status_code=reply.status,
            ) from None
        finally:
            release_body(reply.body)

    def run_job(
        self, job_id: str, *, on_call: Callable[[CallStarted], None] | None = None
    ) -> TaskReport:
        """Run a job to its end, or say when to look again. Never loses the job: when its record
        is out of reach, the message is retried rather than acknowledged."""
        try:
            return self._run_job(job_id, on_call)
        except redis.RedisError as exc:
            log.warning("job %s: Redis unreachable (%s); retrying the message", job_id, exc)
            return TaskReport(retry_in_s=REDIS_RETRY_S + random.uniform(0.0, REDIS_RETRY_S))

    def _run_job(self, job_id: str, on_call: Callable[[CallStarted], None] | None) -> TaskReport:
        # 128 random bits, as uuid4 has, at a third of its cost (measured): a fence, not an id.
        token = os.urandom(16).hex()
        hold_if_asked("claim", f"job {job_id}, delivered and not yet claimed")
        # Through a Redis restart with the same token: a claim whose reply was lost took the
        # lease all the same, and only its own token gets it back before the lease runs out.
        claim = patiently(
            lambda: self.store.claim(
                job_id, token, lease_s=self.settings.lease_s, max_runs=self.settings.max_runs
            ),
            patience_s=FINISH_PATIENCE_S,
        )
        if claim.status == "missing":
            # Expired, deleted, or lost with Redis's last second of writes (README, "When Redis
            # loses writes"): nothing says what to run, so the message goes; a caller waiting
            # on the job gets JobNotFound at its next re-check.
            log.warning(
                "job %s has no record (expired, deleted, or lost when Redis restarted from "
                "older data); dropping its message",
                job_id,
            )
            return TaskReport({"job_id": job_id, "state": "missing"})
        if claim.status == "finished":
            return TaskReport({"job_id": job_id, "state": str(claim.state)})
        if claim.status == "leased":
            # Another worker holds the lease (or held it and died): look again when it ends.
            return TaskReport(retry_in_s=claim.lease_remaining_s + random.uniform(0.1, 1.0))
        if claim.status == "exhausted":
            return self._finish(
                job_id,
                _failure(
                    ErrorClass.WORKER_LOST,
                    f"a worker died during each of {claim.runs} runs of the job and none "
                    "finished, so it is failed as a poison job",
                ),
                token="",  # never claimed: recorded unless a live lease is held
            )
        grace = self.settings.lease_s + FINISH_PATIENCE_S
        left = claim.deadline_left_s
        deadline_s = left if left is not None else (claim.policy.deadline_s if claim.policy else 0)
        self.leases.hold(job_id, token, for_s=max(deadline_s, 0.0) + grace)
        try:
            if claim.status == "unreadable":
                log.error("job %s: this worker cannot read its record: %s", job_id, claim.problem)
                return self._finish(
                    job_id,
                    _failure(
                        ErrorClass.INTERNAL,
                        "this worker cannot read the job's record (written by a newer "
                        f"producer?): {claim.problem}",
                    ),
                    token=token,
                )
            assert claim.request is not None
            assert claim.policy is not None
            unwritten: list[Attempt] = []
            result = self._execute(job_id, claim, unwritten, on_call)
            if result.retry_in_s is not None:
                return self._reschedule(job_id, token, result, earlier=unwritten)
            return self._finish(job_id, result, token=token, earlier=unwritten)
        finally:
            self.leases.release(job_id)

    def _execute(
        self,
        job_id: str,
        claim: Claim,
        unwritten: list[Attempt],
        on_call: Callable[[CallStarted], None] | None = None,
    ) -> ExecutionResult:
        request, policy = claim.request, claim.policy
        assert request is not None
        assert policy is not None

        def record(attempts: list[Attempt]) -> None:
            """Best effort: attempts Redis refuses now are written with the finish."""
            try:
                self.store.append_attempts(job_id, attempts)
            except redis.RedisError as exc:
                log.warning("job %s: attempts not written yet (%s)", job_id, exc)
                unwritten.extend(attempts)

        try:
            # Counted with the tokenizer of the job's first target (they differ by a few %).
            targets = self.config.expand(policy.targets)
            first = self.config.deployments.get(targets[0]) if targets else None
            prompt_tokens = estimate_prompt_tokens(
                job_messages(request), model=first.model if first else None
            )
            return execute_job(
                request,
                policy,
                plan_candidates(
                    planning_policy(request, policy),
                    self.config,
                    prompt_tokens=prompt_tokens,
                    max_tokens=request.max_tokens,
                    unusable=self.unusable,
                    needs=request.needs if isinstance(request, CompletionRequest) else (),
                ),
                router=self.router,
                call=self.call_route,
                record_attempts=record,
                deadline_s=claim.deadline_left_s,
                prompt_tokens=prompt_tokens,
                default_retries=self._default_retries,
                redact=self.redact,
                run=claim.runs,
                on_transition=self.announce,
                on_call=on_call,
                lessons=self.lessons,
                key_of=self._key_of,
                spent=claim.spent,
            )
        except Exception as exc:
            log.exception("job %s failed on an internal error", job_id)
            return _failure(ErrorClass.INTERNAL, self.redact(f"{type(exc).__name__}: {exc}"))

    def _key_of(self, route: Route) -> KeyLabel | None:
        return self.key_labels.get(route.id)

    def _default_retries(self, route: Route) -> int:
        adapter = self.adapters.get(route.id)
        return adapter.default_retries if adapter is not None else 0

    def _reschedule(
        self, job_id: str, token: str, result: ExecutionResult, *, earlier: list[Attempt]
    ) -> TaskReport:
        """Every route refuses the job for longer than a worker should wait: free the slot."""
        assert result.retry_in_s is not None
        self.leases.ending(job_id)
        countdown = reschedule_countdown_s(self.settings, result.retry_in_s)
        attempts = [*earlier, *result.unrecorded]
        if not self.store.release(
            job_id,
            token,
            delay_s=countdown,
            waiting=result.waiting,
            attempts=attempts,
            spent=result.spent,
        ):
            return TaskReport({"job_id": job_id, "state": "lost_lease"})
        log.info("job %s: every target unavailable; rescheduled in %.1fs", job_id, countdown)
        return TaskReport(
            {"job_id": job_id, "state": "rescheduled"},
            retry_in_s=countdown,
            waiting_for=tuple(r.route for r in result.waiting.routes) if result.waiting else (),
        )

    def _success_riders(self, result: ExecutionResult) -> list[Rider]:
        """The record of the job's successful call: riding the finish when the router says it
        can, recorded now otherwise."""
        pending = result.pending_record
        if pending is None:
            return []
        rider = self.router.rider(pending.grant, pending.outcome)
        if rider is not None:
            return [rider]
        transition = self.router.record(pending.grant, pending.outcome)
        if transition is not None:
            self.announce(transition)
        return []

    def _read_rider_reply(self, pending: PendingRecord, rider: Rider, reply: Any) -> None:
        if isinstance(reply, Exception):
            # The call succeeded and its job is recorded; the fleet missed one success (its
            # in-flight slot and any probe permit expire on their own).
            log.warning("breaker %s: success not recorded (%s)", pending.grant.route.id, reply)
            return
        transition = rider.transition_of(reply)
        if transition is not None:
            self.announce(transition)

    def _finish(
        self,
        job_id: str,
        result: ExecutionResult,
        *,
        token: str,
        earlier: list[Attempt] | None = None,
    ) -> TaskReport:
        """Record the outcome, retrying through a Redis hiccup (the lease stays renewed): the
        completion exists only in this process until it is written.

        ``token`` is this run's lease token, the fence: a worker cut off from Redis for longer
        than its lease finds, once back, that another worker took the job over (and maybe
        finished it); finish_job.lua then refuses this run's outcome, and only its attempts are
        logged (they happened). The message is acknowledged: the job is the other run's."""
        self.leases.ending(job_id)
        fields = result.outcome_fields()
        riders = self._success_riders(result)
        status, replies = patiently(
            lambda: self.store.finish_with(
                job_id,
                result.state,
                fields,
                [*(earlier or []), *result.unrecorded],
                riders=[rider.call for rider in riders],
                token=token,
            ),
            patience_s=FINISH_PATIENCE_S,
        )
        if riders and result.pending_record is not None:
            self._read_rider_reply(result.pending_record, riders[0], replies[0])
        summary: dict[str, Any] = {"job_id": job_id, "state": result.state.value}
        if result.route is not None:
            summary["deployment"] = result.route.deployment.id
            summary["cost_usd"] = fields.get("cost_usd")
        if result.error is not None:
            summary["error_class"] = result.error.error_class.value
        if status is FinishStatus.ALREADY_FINISHED:
            summary["duplicate"] = True
            log.info("job %s had already finished; this run's outcome was not recorded", job_id)
        elif status is FinishStatus.FENCED:
            summary["fenced"] = True
            log.warning(
                "job %s: this run lost its lease and another run holds the job now; "
                "its outcome (%s) was refused, its attempts logged",
                job_id,
                result.state.value,
            )
        elif status is FinishStatus.MISSING:
            summary["missing"] = True
            log.error(
                "job %s: its record is gone (expired, or lost when Redis restarted from an older "
                "snapshot); this run's outcome (%s) could not be recorded",
                job_id,
                result.state.value,
            )
        return TaskReport(summary)


def _failure(error_class: ErrorClass, message: str) -> ExecutionResult:
    return ExecutionResult(
        JobState.FAILED, error=JobError(error_class=error_class, message=message)
    )


_runtime: WorkerRuntime | None = None
_runtime_lock = threading.Lock()


def get_runtime() -> WorkerRuntime:
    """The process's runtime, built on first use (after fork, in a prefork child)."""
    global _runtime
    if _runtime is None:
        with _runtime_lock:
            if _runtime is None:
                _runtime = WorkerRuntime.build()
    return _runtime


def install_runtime(runtime: WorkerRuntime | None) -> WorkerRuntime | None:
    """Make ``runtime`` the one this process's tasks run on, and return the one it replaces.

    For a worker running inside another process (``ops.testing``), built on settings of its
    own rather than the environment; None goes back to building one on first use."""
    global _runtime
    with _runtime_lock:
        previous, _runtime = _runtime, runtime
    return previous


def reset_runtime() -> None:
    """Forget the runtime (a forked child must not share its parent's sockets)."""
    global _runtime
    with _runtime_lock:
        _runtime = None
