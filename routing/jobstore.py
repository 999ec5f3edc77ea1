"""The job record in Redis: the single source of truth about every job (design invariant 1).

A job is a hash (state, request, policy, lease, outcome) plus a list (its attempt log). Every
state change is one Lua script, so concurrent workers and producers never see half a change:

    create   (producer)  -> queued          idempotency key maps to one job; owner recorded
    claim    (worker)    -> running          under a lease; refused while another lease lives
    renew    (worker)                        extends the leases a live worker holds
    release  (worker)    -> queued           every route refuses it for now: run again later
    finish   (worker)    -> succeeded|failed first finisher wins; later ones change nothing,
                                             and a run whose lease token is no longer the
                                             job's (taken over) is refused: the fence
    delete   (producer)  -> gone             a create whose Celery message could not be sent

A job's own record costs a worker two round trips: claim before the provider call, finish (or,
every route refusing it for now, release with what it waits for and what it spent of its retries,
which the next claim hands back) after it (the breaker's record of a success rides the finish;
routing adds one per attempt). A job's ``runs`` counts its deliveries, ``reschedules`` its
releases; the difference is the runs a worker died in, which ``max_runs`` bounds. The
scripts are files in routing/scripts (``*_job``, ``renew_leases``, ``reconcile_due``; loaded by
routing.redis_scripts); they also keep the ``due`` index that the reconciler (``pick_due``) reads
to re-send the messages of jobs that were lost on their way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal

import redis
import redis.asyncio as aioredis
from pydantic import ValidationError
from redis.exceptions import NoScriptError

from routing.embeddings import JobRequest, parse_job_request
from routing.keys import Keys
from routing.models import (
    Attempt,
    CompletionResult,
    JobState,
    RoutingPolicy,
    SpentBudget,
    Waiting,
)
from routing.redis_clock import redis_time
from routing.redis_scripts import source
from routing.redis_text import as_text, decoded
from routing.routes import ScriptCall


def redis_client(
    url: str,
    *,
    max_connections: int = 64,
    socket_timeout_s: float = 10.0,
    connect_timeout_s: float = 5.0,
) -> redis.Redis:
    """A client for job records.

    Bounded timeouts, so a lost Redis is an error, not a hang. A blocking pool sized to the
    caller's threads: redis-py's default pool holds 100 connections and fails at once beyond
    that, which a worker with hundreds of threads reaches in a burst.
    """
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=socket_timeout_s,
        decode_responses=True,
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=connect_timeout_s,
        health_check_interval=30,
    )
    return redis.Redis(connection_pool=pool)


class FinishStatus(Enum):
    """What finish_job.lua did with a run's outcome (its reply code)."""

    RECORDED = 1
    #: The job had already finished: this was a duplicate run, its outcome is dropped.
    ALREADY_FINISHED = 0
    #: The job has no record (expired, or lost with Redis's last second: see the README).
    MISSING = -1
    #: Another run holds the job: ours lost its lease (cut off from Redis past it) and was
    #: taken over. The outcome is refused; the run's attempts are still logged.
    FENCED = -2


@dataclass(frozen=True)
class Claim:
    status: Literal["claimed", "unreadable", "missing", "finished", "leased", "exhausted"]
    request: JobRequest | None = None
    policy: RoutingPolicy | None = None
    #: claimed: which delivery of the job this run is (1, 2, ...: reschedules count);
    #: exhausted: the runs a worker died in
    runs: int = 0
    state: JobState | None = None
    lease_remaining_s: float = 0.0
    #: Why a claimed job's record could not be read (written by a newer producer, or damaged).
    problem: str | None = None
    #: What is left of the job's deadline (fixed at its first claim), seconds.
    deadline_left_s: float | None = None
    #: What the job's earlier runs spent of its retries (empty on its first run).
    spent: SpentBudget = field(default_factory=SpentBudget)


def parse_claim(reply: list[Any]) -> Claim:
    status = as_text(reply[0])
    if status == "claimed":
        try:
            request = parse_job_request(reply[1])
            policy = RoutingPolicy.model_validate_json(reply[2])
        except ValidationError as exc:
            return Claim("unreadable", runs=int(reply[3]), problem=str(exc))
        return Claim(
            "claimed",
            request=request,
            policy=policy,
            runs=int(reply[3]),
            deadline_left_s=int(reply[4]) / 1000,
            spent=spent_budget_of(reply[5] if len(reply) > 5 else None),
        )
    if status == "finished":
        return Claim("finished", state=JobState(as_text(reply[1])))
    if status == "leased":
        return Claim("leased", lease_remaining_s=int(reply[1]) / 1000)
    if status == "exhausted":
        return Claim("exhausted", runs=int(reply[1]))
    return Claim("missing")


def result_from_record(
    job_id: str, fields: dict[str, str], attempts: list[str]
) -> CompletionResult:
    """Assemble the caller's view of a job from its hash and attempt list."""
    outcome: dict[str, Any] = json.loads(fields["outcome"]) if "outcome" in fields else {}

    def seconds(name: str) -> float | None:
        return int(fields[name]) / 1000 if name in fields else None

    return CompletionResult.model_validate(
        {
            **outcome,
            "job_id": job_id,
            "state": fields["state"],
            "attempts": [json.loads(a) for a in attempts],
            "created_at": seconds("created_at"),
            "started_at": seconds("started_at"),
            "finished_at": seconds("finished_at"),
            "runs": int(fields.get("runs", 0)),
            "waiting": waiting_of(fields.get("waiting")),
        }
    )


def waiting_of(raw: str | bytes | None) -> Waiting | None:
    """What a queued job waits for, read leniently: a newer worker may write a reason or a
    field this producer does not know (a rolling upgrade), and a waiting note is only ever
    information, so one it cannot read is no note rather than a failed wait."""
    if not raw:
        return None
    try:
        return Waiting.model_validate_json(raw)
    except ValidationError:
        return None


def spent_budget_of(raw: str | bytes | None) -> SpentBudget:
    """A job's spent budget, read leniently as ``waiting_of`` reads its note: one this worker
    cannot read (a newer worker's) is read as nothing spent, which at worst allows a route its
    retries again, never fails the job."""
    if not raw:
        return SpentBudget()
    try:
        return SpentBudget.model_validate_json(raw)
    except ValidationError:
        return SpentBudget()


@dataclass(frozen=True)
class StoredJob:
    """A job as its record holds it: what its caller sees, and who owns it. The owner is an
    opaque string the producer gave at create (turnout serve: the digest of its caller's token),
    None for a job created without one (the Python client's); it is never part of the result,
    so nothing that shows a result can show it."""

    result: CompletionResult
    owner: str | None


def stored_job(job_id: str, fields: dict[str, str], attempts: list[str]) -> StoredJob:
    return StoredJob(result_from_record(job_id, fields, attempts), fields.get("owner") or None)


def _idempotency_keys(keys: Keys, request: JobRequest) -> list[str]:
    return [keys.idempotency(request.idempotency_key)] if request.idempotency_key else []


def _delete_keys(keys: Keys, job_id: str, request: JobRequest) -> list[str]:
    return [keys.job(job_id), keys.due, keys.job_counts, *_idempotency_keys(keys, request)]


def _create_args(
    keys: Keys,
    job_id: str,
    request: JobRequest,
    policy: RoutingPolicy,
    ttl_s: int,
    requeue_after_s: float,
    owner: str | None,
    queue: str,
) -> tuple[list[str], list[str]]:
    return [keys.job(job_id), keys.due, keys.job_counts, *_idempotency_keys(keys, request)], [
        job_id,
        # Fields left at their defaults are not written: a worker of the release before, whose
        # models forbid fields they do not know, still reads a job that uses none of the new
        # ones (rolling upgrades: README, Upgrading). Nor is the interactive lane: planning
        # reads a missing lane as interactive, and the record's queue says where it went.
        request.model_dump_json(exclude_none=True),
        policy.model_dump_json(
            exclude_defaults=True, exclude={"lane"} if policy.lane == "interactive" else None
        ),
        str(ttl_s),
        str(int(requeue_after_s * 1000)),
        str(int(policy.deadline_s * 1000)),
        owner or "",
        queue,
    ]


class JobStore:
    """Synchronous access to job records (workers and the sync producer)."""

    def __init__(
        self, client: redis.Redis, keys: Keys, *, ttl_s: int, requeue_after_s: float = 600.0
    ) -> None:
        self.redis = client
        self.keys = keys
        self.ttl_s = ttl_s
        self.requeue_after_s = requeue_after_s
        self._create = client.register_script(source("create_job"))
        self._delete = client.register_script(source("delete_job"))
        self._claim = client.register_script(source("claim_job"))
        self._renew = client.register_script(source("renew_leases"))
        self._finish = client.register_script(source("finish_job"))
        self._finish_and_record = client.register_script(source("finish_and_record"))
        self._record_sha = client.register_script(source("record_outcome")).sha
        self._reconcile = client.register_script(source("reconcile_due"))
        self._release = client.register_script(source("release_job"))

    def create(
        self,
        job_id: str,
        request: JobRequest,
        policy: RoutingPolicy,
        *,
        owner: str | None = None,
        queue: str = "",
    ) -> tuple[str, bool]:
        """Store a queued job, owned by ``owner`` when one is given; returns (job id, created).
        An idempotency key seen before returns the job it already names (its owner unchanged:
        callers scope their keys to themselves), and ``created`` is False. ``queue`` is the
        Celery queue its message goes to (its lane's, routing.lanes), where the reconciler
        re-sends it."""
        job_keys, args = _create_args(
            self.keys, job_id, request, policy, self.ttl_s, self.requeue_after_s, owner, queue
        )
        created, existing = self._create(keys=job_keys, args=args)
        return as_text(existing), bool(created)

    def delete(self, job_id: str, request: JobRequest) -> bool:
        """Undo a create whose Celery message could not be sent: True when the job was taken
        back, False when a worker had claimed it (the message reached the queue after all)."""
        return bool(self._delete(keys=_delete_keys(self.keys, job_id, request), args=[job_id]))

    def claim(self, job_id: str, token: str, *, lease_s: float, max_runs: int) -> Claim:
        reply = self._claim(
            keys=[self.keys.job(job_id), self.keys.due, self.keys.job_counts],
            args=[token, int(lease_s * 1000), max_runs, job_id],
        )
        return parse_claim(reply)

    def renew(self, leases: dict[str, str], *, lease_s: float) -> dict[str, bool]:
        """Extend held leases in one round trip; returns which are still ours."""
        if not leases:
            return {}
        ids = list(leases)
        flags = self._renew(
            keys=[self.keys.due, *(self.keys.job(i) for i in ids)],
            args=[int(lease_s * 1000), *(arg for i in ids for arg in (leases[i], i))],
        )
        return {job_id: bool(flag) for job_id, flag in zip(ids, flags, strict=True)}

    def append_attempts(self, job_id: str, attempts: list[Attempt]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.rpush(self.keys.attempts(job_id), *(a.model_dump_json() for a in attempts))
        pipe.expire(self.keys.attempts(job_id), self.ttl_s)
        pipe.execute()

    def release(
        self,
        job_id: str,
        token: str,
        *,
        delay_s: float,
        waiting: Waiting | None = None,
        attempts: Sequence[Attempt] = (),
        spent: SpentBudget | None = None,
    ) -> bool:
        """Give a running job back to the queue for later (every route refuses it for now),
        with what it waits for, what its runs spent of its retries (the next run goes on from
        there) and the run's attempts not yet written, in one round trip."""
        return bool(
            self._release(
                keys=[
                    self.keys.job(job_id),
                    self.keys.due,
                    self.keys.job_counts,
                    self.keys.attempts(job_id),
                ],
                args=[
                    token,
                    job_id,
                    int(delay_s * 1000),
                    waiting.model_dump_json() if waiting is not None else "",
                    self.ttl_s,
                    spent.model_dump_json() if spent is not None else "",
                    *(a.model_dump_json() for a in attempts),
                ],
            )
        )

    def finish(
        self,
        job_id: str,
        state: JobState,
        outcome: dict[str, Any],
        attempts: list[Attempt],
        *,
        token: str = "",
    ) -> bool:
        """Record the outcome unless the job already finished or another run holds it; returns
        whether this call did. ``token`` is the run's lease token (see ``finish_with``)."""
        status, _ = self.finish_with(job_id, state, outcome, attempts, riders=(), token=token)
        return status is FinishStatus.RECORDED

    def finish_with(
        self,
        job_id: str,
        state: JobState,
        outcome: dict[str, Any],
        attempts: list[Attempt],
        *,
        riders: Sequence[ScriptCall],
        token: str = "",
    ) -> tuple[FinishStatus, list[Any]]:
        """``finish``, with other scripts on this Redis sent in the same round trip (the last
        call's breaker record). Returns what became of the outcome, and each rider's reply (an
        exception object when that script failed: riders never fail the finish). A lone
        breaker record runs inside the finish's own script run (finish_and_record.lua): one
        EVALSHA, not two; other riders share the round trip in a pipeline.

        ``token`` fences the finish: it is recorded only while the job is running under that
        lease token, so a worker that was cut off from Redis past its lease, and whose job
        another worker claimed meanwhile, cannot overwrite or duplicate that run's result. An
        empty token (a job this worker never claimed: the poison case) is recorded unless a live
        lease is held by someone."""
        keys = [
            self.keys.job(job_id),
            self.keys.attempts(job_id),
            self.keys.due,
            self.keys.job_counts,
        ]
        args = [
            state.value,
            json.dumps(outcome, separators=(",", ":")),
            self.ttl_s,
            self.keys.done_channel(job_id),
            job_id,
            token,
            *(a.model_dump_json() for a in attempts),
        ]
        if not riders:
            return FinishStatus(int(self._finish(keys=keys, args=args)[0])), []
        if len(riders) == 1 and riders[0].script.sha == self._record_sha:
            return self._finish_recording(keys, args, riders[0])
        # EVALSHA in a plain pipeline: redis-py's Script objects would add a SCRIPT EXISTS
        # round trip to every pipeline; a script Redis does not have yet is sent again alone.
        pipe = self.redis.pipeline(transaction=False)
        pipe.evalsha(self._finish.sha, len(keys), *keys, *args)
        for rider in riders:
            pipe.evalsha(rider.script.sha, len(rider.keys), *rider.keys, *rider.args)
        replies = pipe.execute(raise_on_error=False)
        finished = replies[0]
        if isinstance(finished, NoScriptError):
            finished = self._finish(keys=keys, args=args)
        elif isinstance(finished, Exception):
            raise finished
        answers: list[Any] = []
        for rider, reply in zip(riders, replies[1:], strict=True):
            if isinstance(reply, NoScriptError):
                try:
                    reply = rider.script(keys=rider.keys, args=rider.args)
                except redis.RedisError as exc:
                    reply = exc
            answers.append(reply)
        return FinishStatus(int(finished[0])), answers

    def _finish_recording(
        self, keys: list[str], args: list[Any], record: ScriptCall
    ) -> tuple[FinishStatus, list[Any]]:
        """The finish and the breaker record in one script run (finish_and_record.lua): one
        EVALSHA. A failed record comes back as a RedisError object, as a failed rider does."""
        finished, recorded_ok, recorded = self._finish_and_record(
            keys=[*keys, *record.keys], args=[len(keys), len(args), *args, *record.args]
        )
        answer = recorded if int(recorded_ok) else redis.RedisError(as_text(recorded))
        return FinishStatus(int(finished[0])), [answer]

    def counts(self) -> dict[str, int]:
        """Jobs queued and running now, and created, succeeded and failed today (UTC)."""
        day = redis_time(self.redis).day  # the scripts' day: Redis's clock, not ours
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.keys.job_counts)
        pipe.hgetall(self.keys.job_counts_on(day))
        now, today = pipe.execute()
        found = {**decoded(today), **decoded(now)}
        names = ("queued", "running", "created", "succeeded", "failed")
        return {name: max(0, int(found.get(name, 0))) for name in names}

    def pick_due(self, *, limit: int, recheck_s: float) -> list[tuple[str, str]]:
        """Jobs whose message must be sent again, each with why ('queued' or 'lease_expired');
        a picked job is not picked again for ``recheck_s``."""
        flat = self._reconcile(
            keys=[self.keys.due, self.keys.reconciler_counts, self.keys.job_prefix],
            args=[limit, int(recheck_s * 1000)],
        )
        texts = [as_text(item) for item in flat]
        return list(zip(texts[::2], texts[1::2], strict=True))

    def queues_of(self, job_ids: Sequence[str]) -> list[str | None]:
        """The Celery queue each job's message goes to (None: stored before lanes, or gone)."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hget(self.keys.job(job_id), "queue")
        return [as_text(q) if q else None for q in pipe.execute()]

    def state(self, job_id: str) -> JobState | None:
        value = self.redis.hget(self.keys.job(job_id), "state")
        return JobState(as_text(value)) if value is not None else None

    def get(self, job_id: str) -> CompletionResult | None:
        stored = self.read(job_id)
        return stored.result if stored is not None else None

    def read(self, job_id: str) -> StoredJob | None:
        """The job and its owner, in the one round trip ``get`` takes."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.keys.job(job_id))
        pipe.lrange(self.keys.attempts(job_id), 0, -1)
        fields, attempts = pipe.execute()
        if not fields:
            return None
        return stored_job(job_id, decoded(fields), [as_text(a) for a in attempts])


class AsyncJobStore:
    """The producer's half of JobStore for asyncio callers: never blocks the event loop."""

    def __init__(
        self, client: aioredis.Redis, keys: Keys, *, ttl_s: int, requeue_after_s: float = 600.0
    ) -> None:
        self.redis = client
        self.keys = keys
        self.ttl_s = ttl_s
        self.requeue_after_s = requeue_after_s
        self._create = client.register_script(source("create_job"))
        self._delete = client.register_script(source("delete_job"))

    async def create(
        self,
        job_id: str,
        request: JobRequest,
        policy: RoutingPolicy,
        *,
        owner: str | None = None,
        queue: str = "",
    ) -> tuple[str, bool]:
        job_keys, args = _create_args(
            self.keys, job_id, request, policy, self.ttl_s, self.requeue_after_s, owner, queue
        )
        created, existing = await self._create(keys=job_keys, args=args)
        return as_text(existing), bool(created)

    async def delete(self, job_id: str, request: JobRequest) -> bool:
        return bool(
            await self._delete(keys=_delete_keys(self.keys, job_id, request), args=[job_id])
        )

    async def state(self, job_id: str) -> JobState | None:
        value = await self.redis.hget(self.keys.job(job_id), "state")
        return JobState(as_text(value)) if value is not None else None

    async def progress(self, job_id: str) -> tuple[JobState | None, Waiting | None]:
        """The job's state and what it waits for, if anything (one read, as ``state``)."""
        state, waiting = await self.redis.hmget(self.keys.job(job_id), ["state", "waiting"])
        if state is None:
            return None, None
        return JobState(as_text(state)), waiting_of(waiting)

    async def get(self, job_id: str) -> CompletionResult | None:
        stored = await self.read(job_id)
        return stored.result if stored is not None else None

    async def read(self, job_id: str) -> StoredJob | None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.keys.job(job_id))
            pipe.lrange(self.keys.attempts(job_id), 0, -1)
            fields, attempts = await pipe.execute()
        if not fields:
            return None
        return stored_job(job_id, decoded(fields), [as_text(a) for a in attempts])
