"""The job record in Redis: the single source of truth about every job (design invariant 1).

A job is a hash (state, request, policy, lease, outcome) plus a list (its attempt log). Every
state change is one Lua script, so concurrent workers and producers never see half a change:

    create   (producer)  -> queued          idempotency key maps to one job
    claim    (worker)    -> running          under a lease; refused while another lease lives
    renew    (worker)                        extends the leases a live worker holds
    finish   (worker)    -> succeeded|failed first finisher wins; later ones change nothing

A worker's hot path is two round trips: claim before the provider call, finish after it.
Times come from Redis (``TIME``), never from a worker's clock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import redis
import redis.asyncio as aioredis
from pydantic import ValidationError

from routing.keys import Keys
from routing.models import (
    Attempt,
    CompletionRequest,
    CompletionResult,
    JobState,
    RoutingPolicy,
)

# KEYS[1] job hash, KEYS[2] idempotency key (absent when the job has none)
# ARGV[1] job id, ARGV[2] request json, ARGV[3] policy json, ARGV[4] ttl seconds
# -> {1, job_id} created | {0, existing_job_id} the idempotency key already named a job
CREATE_JOB = """
if KEYS[2] then
  local existing = redis.call('GET', KEYS[2])
  if existing then return {0, existing} end
  redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[4])
end
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('HSET', KEYS[1], 'state', 'queued', 'request', ARGV[2], 'policy', ARGV[3],
           'created_at', now, 'updated_at', now, 'runs', 0)
redis.call('EXPIRE', KEYS[1], ARGV[4])
return {1, ARGV[1]}
"""

# KEYS[1] job hash
# ARGV[1] lease token, ARGV[2] lease ms, ARGV[3] max runs
# -> {'claimed', request, policy, runs} | {'missing'} | {'finished', state}
#    | {'leased', remaining_ms} | {'exhausted', runs}
CLAIM_JOB = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing'} end
if state == 'succeeded' or state == 'failed' then return {'finished', state} end
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
if state == 'running' then
  local lease_until = tonumber(redis.call('HGET', KEYS[1], 'lease_until') or '0')
  if lease_until > now then return {'leased', lease_until - now} end
end
local runs = tonumber(redis.call('HGET', KEYS[1], 'runs') or '0')
if runs >= tonumber(ARGV[3]) then return {'exhausted', runs} end
runs = redis.call('HINCRBY', KEYS[1], 'runs', 1)
redis.call('HSET', KEYS[1], 'state', 'running', 'lease_token', ARGV[1],
           'lease_until', now + tonumber(ARGV[2]), 'started_at', now, 'updated_at', now)
local job = redis.call('HMGET', KEYS[1], 'request', 'policy')
return {'claimed', job[1], job[2], runs}
"""

# KEYS job hashes; ARGV[1] lease ms, ARGV[2..] the lease token of each key, in order
# -> one flag per key: 1 renewed, 0 no longer ours (finished, or re-claimed after expiry)
RENEW_LEASES = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local renewed = {}
for i, key in ipairs(KEYS) do
  local job = redis.call('HMGET', key, 'state', 'lease_token')
  if job[1] == 'running' and job[2] == ARGV[i + 1] then
    redis.call('HSET', key, 'lease_until', now + tonumber(ARGV[1]))
    renewed[i] = 1
  else
    renewed[i] = 0
  end
end
return renewed
"""

# KEYS[1] job hash, KEYS[2] attempt list
# ARGV[1] final state, ARGV[2] outcome json, ARGV[3] ttl seconds, ARGV[4] done channel,
# ARGV[5..] attempts to append (they happened, whoever wins)
# -> {1} recorded | {0, state} the job had already finished (a duplicate run) | {-1} no record
FINISH_JOB = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {-1} end
for i = 5, #ARGV do redis.call('RPUSH', KEYS[2], ARGV[i]) end
redis.call('EXPIRE', KEYS[2], ARGV[3])
if state == 'succeeded' or state == 'failed' then return {0, state} end
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'outcome', ARGV[2], 'finished_at', now,
           'updated_at', now)
redis.call('HDEL', KEYS[1], 'lease_token', 'lease_until')
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[1])
return {1}
"""


def redis_client(
    url: str, *, max_connections: int = 64, socket_timeout_s: float = 10.0
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
        socket_connect_timeout=5,
        health_check_interval=30,
    )
    return redis.Redis(connection_pool=pool)


@dataclass(frozen=True)
class Claim:
    status: Literal["claimed", "unreadable", "missing", "finished", "leased", "exhausted"]
    request: CompletionRequest | None = None
    policy: RoutingPolicy | None = None
    runs: int = 0
    state: JobState | None = None
    lease_remaining_s: float = 0.0
    #: Why a claimed job's record could not be read (written by a newer producer, or damaged).
    problem: str | None = None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_claim(reply: list[Any]) -> Claim:
    status = _text(reply[0])
    if status == "claimed":
        try:
            request = CompletionRequest.model_validate_json(reply[1])
            policy = RoutingPolicy.model_validate_json(reply[2])
        except ValidationError as exc:
            return Claim("unreadable", runs=int(reply[3]), problem=str(exc))
        return Claim("claimed", request=request, policy=policy, runs=int(reply[3]))
    if status == "finished":
        return Claim("finished", state=JobState(_text(reply[1])))
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
        }
    )


def _record_keys(keys: Keys, job_id: str, request: CompletionRequest) -> list[str]:
    """The keys a create writes: the job hash, and its idempotency key when it has one."""
    names = [keys.job(job_id)]
    if request.idempotency_key:
        names.append(keys.idempotency(request.idempotency_key))
    return names


def _create_args(
    keys: Keys, job_id: str, request: CompletionRequest, policy: RoutingPolicy, ttl_s: int
) -> tuple[list[str], list[str]]:
    return _record_keys(keys, job_id, request), [
        job_id,
        request.model_dump_json(),
        policy.model_dump_json(),
        str(ttl_s),
    ]


class JobStore:
    """Synchronous access to job records (workers and the sync producer)."""

    def __init__(self, client: redis.Redis, keys: Keys, *, ttl_s: int) -> None:
        self.redis = client
        self.keys = keys
        self.ttl_s = ttl_s
        self._create = client.register_script(CREATE_JOB)
        self._claim = client.register_script(CLAIM_JOB)
        self._renew = client.register_script(RENEW_LEASES)
        self._finish = client.register_script(FINISH_JOB)

    def create(
        self, job_id: str, request: CompletionRequest, policy: RoutingPolicy
    ) -> tuple[str, bool]:
        """Store a queued job; returns (job id, created). An idempotency key seen before
        returns the job it already names, and ``created`` is False."""
        job_keys, args = _create_args(self.keys, job_id, request, policy, self.ttl_s)
        created, existing = self._create(keys=job_keys, args=args)
        return _text(existing), bool(created)

    def delete(self, job_id: str, request: CompletionRequest) -> None:
        """Undo a create whose Celery message could not be sent."""
        self.redis.delete(*_record_keys(self.keys, job_id, request))

    def claim(self, job_id: str, token: str, *, lease_s: float, max_runs: int) -> Claim:
        reply = self._claim(
            keys=[self.keys.job(job_id)], args=[token, int(lease_s * 1000), max_runs]
        )
        return parse_claim(reply)

    def renew(self, leases: dict[str, str], *, lease_s: float) -> dict[str, bool]:
        """Extend held leases in one round trip; returns which are still ours."""
        if not leases:
            return {}
        ids = list(leases)
        flags = self._renew(
            keys=[self.keys.job(i) for i in ids],
            args=[int(lease_s * 1000), *(leases[i] for i in ids)],
        )
        return {job_id: bool(flag) for job_id, flag in zip(ids, flags, strict=True)}

    def append_attempt(self, job_id: str, attempt: Attempt) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.rpush(self.keys.attempts(job_id), attempt.model_dump_json())
        pipe.expire(self.keys.attempts(job_id), self.ttl_s)
        pipe.execute()

    def finish(
        self,
        job_id: str,
        state: JobState,
        outcome: dict[str, Any],
        attempts: list[Attempt],
    ) -> bool:
        """Record the outcome unless the job already finished; returns whether this call did."""
        reply = self._finish(
            keys=[self.keys.job(job_id), self.keys.attempts(job_id)],
            args=[
                state.value,
                json.dumps(outcome, separators=(",", ":")),
                self.ttl_s,
                self.keys.done_channel(job_id),
                *(a.model_dump_json() for a in attempts),
            ],
        )
        return int(reply[0]) == 1

    def state(self, job_id: str) -> JobState | None:
        value = self.redis.hget(self.keys.job(job_id), "state")
        return JobState(_text(value)) if value is not None else None

    def get(self, job_id: str) -> CompletionResult | None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.keys.job(job_id))
        pipe.lrange(self.keys.attempts(job_id), 0, -1)
        fields, attempts = pipe.execute()
        if not fields:
            return None
        return result_from_record(job_id, _decoded(fields), [_text(a) for a in attempts])


class AsyncJobStore:
    """The producer's half of JobStore for asyncio callers: never blocks the event loop."""

    def __init__(self, client: aioredis.Redis, keys: Keys, *, ttl_s: int) -> None:
        self.redis = client
        self.keys = keys
        self.ttl_s = ttl_s
        self._create = client.register_script(CREATE_JOB)

    async def create(
        self, job_id: str, request: CompletionRequest, policy: RoutingPolicy
    ) -> tuple[str, bool]:
        job_keys, args = _create_args(self.keys, job_id, request, policy, self.ttl_s)
        created, existing = await self._create(keys=job_keys, args=args)
        return _text(existing), bool(created)

    async def delete(self, job_id: str, request: CompletionRequest) -> None:
        await self.redis.delete(*_record_keys(self.keys, job_id, request))

    async def state(self, job_id: str) -> JobState | None:
        value = await self.redis.hget(self.keys.job(job_id), "state")
        return JobState(_text(value)) if value is not None else None

    async def get(self, job_id: str) -> CompletionResult | None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.keys.job(job_id))
            pipe.lrange(self.keys.attempts(job_id), 0, -1)
            fields, attempts = await pipe.execute()
        if not fields:
            return None
        return result_from_record(job_id, _decoded(fields), [_text(a) for a in attempts])


def _decoded(fields: dict[Any, Any]) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in fields.items()}
