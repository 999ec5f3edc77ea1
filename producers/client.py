"""The producer client: submit completion jobs, then wait for them, from sync code or asyncio.

    client = Client()
    handle = client.submit("Summarise this ...", policy="default")
    result = handle.wait(timeout=60)          # a CompletionResult
    result = client.complete("Hi")            # submit + wait; raises JobFailed if it failed

    result = await client.acomplete("Hi")     # the same, never blocking the event loop

Everything is validated here, before anything is enqueued: a bad request, an unknown policy or
deployment, a deadline the stack cannot honour all raise InvalidRequest. The Celery message
carries the job id only; the request lives in the job record. The producer needs no API key.

Redis going away (a restart, a failover, a pause) is ridden out: every submit, wait and read
is tried again with backoff for TURNOUT_REDIS_PATIENCE_S (producers.redis_patience), then
raises RedisUnavailable. A retried submit never makes a second job, nor sends one job twice.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import redis
import redis.asyncio as aioredis

from producers.arguments import (
    PolicyLike,
    RequestLike,
    as_request,  # re-exported: callers import it from here
    checked_owner,
    checked_timeout,
)
from producers.embedding_arguments import (
    EmbeddingLike,
    as_embedding_request,
    check_embedding_targets,
)
from producers.handles import AsyncJobHandle, JobHandle, OnWaiting
from producers.loop_thread import LoopThread
from producers.publisher import JobPublisher
from producers.redis_patience import RedisPatience, Streak, is_redis_outage, redacted
from producers.waiter import CompletionListener
from routing.capability_fit import check_capable
from routing.celery_config import create_app, max_job_deadline_s, queue_name
from routing.config import TurnoutConfig, load_config
from routing.embeddings import EmbeddingRequest, JobRequest
from routing.errors import (
    ConfigError,
    InvalidRequest,
    JobFailed,
    JobNotFound,
    SubmitError,
    TurnoutError,
)
from routing.jobstore import AsyncJobStore, JobStore, redis_client
from routing.keys import Keys
from routing.lanes import LANES, lane_queue, pick_bulk_queue
from routing.models import CompletionRequest, CompletionResult, JobState, Lane, RoutingPolicy
from routing.policies import resolve_policy
from routing.settings import CoreSettings

__all__ = ["AsyncJobHandle", "Client", "JobHandle", "PolicyLike", "RequestLike", "as_request"]

T = TypeVar("T")

#: A Redis reply slower than this is a lost connection, not a slow server.
SOCKET_TIMEOUT_S = 10.0
#: Redis connections a client may hold; callers beyond it wait for one rather than fail.
MAX_CONNECTIONS = 128


log = logging.getLogger("turnout.client")


class Client:
    """Submits jobs and waits for them. Thread-safe for sync use; usable from any event loop."""

    def __init__(
        self,
        *,
        settings: CoreSettings | None = None,
        config: TurnoutConfig | str | Path | None = None,
        patience: RedisPatience | None = None,
        lane: Lane = "interactive",
    ) -> None:
        self.settings = settings or CoreSettings()
        #: The lane of jobs whose call and policy name none (routing.lanes): ``interactive``,
        #: ``bulk`` for ``turnout batch``.
        self.lane = checked_lane(lane)
        #: This client's bulk queue, chosen when it first sends a bulk job: a batch's own.
        self._bulk_queue: str | None = None
        #: How long Redis away is ridden out (TURNOUT_REDIS_PATIENCE_S unless given): every
        #: Redis call of this client goes through it. ``turnout batch`` gives its own.
        self.patience = patience or RedisPatience(budget_s=self.settings.redis_patience_s)
        self.keys = Keys(self.settings.namespace)
        self.config = self._load_config(config)
        self.store = JobStore(
            redis_client(self.settings.redis_url, max_connections=MAX_CONNECTIONS),
            self.keys,
            ttl_s=self.settings.job_ttl_s,
            requeue_after_s=self.settings.requeue_after_s,
        )
        self._publisher = JobPublisher(
            create_app(self.settings), queue_name(self.settings, self.keys.queue)
        )
        self._max_deadline_s = max_job_deadline_s(self.settings)
        self._sync_loop: LoopThread | None = None
        self._async_parts: dict[asyncio.AbstractEventLoop, _AsyncParts] = {}
        self._lock = threading.Lock()

    def _load_config(self, config: TurnoutConfig | str | Path | None) -> TurnoutConfig:
        if isinstance(config, TurnoutConfig):
            return config
        path = config or self.settings.config_path
        if path is None:
            raise ConfigError(
                "no config: pass Client(config=...) or set TURNOUT_CONFIG to the YAML file of "
                "deployments and policies"
            )
        return load_config(path)

    # --- validation ---------------------------------------------------------------------------

    def prepare(
        self,
        request: RequestLike,
        *,
        policy: PolicyLike = None,
        targets: Sequence[str] | None = None,
        lane: Lane | None = None,
    ) -> tuple[CompletionRequest, RoutingPolicy]:
        """Validate a job without submitting it: InvalidRequest on anything wrong (a policy
        none of whose targets can take what the request needs included). The policy comes back
        with its lane resolved: ``lane``, else the policy's, else the client's."""
        checked = as_request(request)
        routing = resolve_policy(
            self.config, policy, targets=targets, max_deadline_s=self._max_deadline_s
        )
        check_capable(self.config, routing, checked)
        chosen = checked_lane(lane) if lane is not None else routing.lane or self.lane
        return checked, routing.model_copy(update={"lane": chosen})

    def queue_of(self, routing: RoutingPolicy) -> str:
        """The Celery queue of a job of ``routing``'s lane; a bulk one picks this client's bulk
        queue the first time (routing.lanes.pick_bulk_queue: one Redis round trip)."""
        lane = routing.lane or self.lane
        if lane == "bulk" and self._bulk_queue is None:
            streak = self._streak("could not choose a bulk queue")
            picked = streak.call(
                lambda: pick_bulk_queue(self.store.redis, self.keys, self.settings)
            )
            with self._lock:
                self._bulk_queue = self._bulk_queue or picked
        return lane_queue(self.keys, self.settings, lane, self._bulk_queue or self.keys.queue)

    # --- sync ---------------------------------------------------------------------------------

    def submit(
        self,
        request: RequestLike,
        *,
        policy: PolicyLike = None,
        targets: Sequence[str] | None = None,
        owner: str | None = None,
        lane: Lane | None = None,
    ) -> JobHandle:
        """Validate and enqueue a job; returns at once with a handle to it.

        A request with an ``idempotency_key`` seen before returns the handle of the job that
        key already names; if that job is still queued its message is sent again (see
        ``_republish``), and nothing else is enqueued.

        ``owner`` is an opaque label the job record keeps (``JobHandle.read`` gives it back):
        turnout serve passes its caller's token digest and shows the job to that caller only.
        The client itself reads every job, owned or not: it holds Redis access anyway.

        ``lane`` (``interactive`` or ``bulk``) overrides the policy's and the client's.
        """
        completion, routing = self.prepare(request, policy=policy, targets=targets, lane=lane)
        return self._submit_prepared(completion, routing, owner)

    def _submit_prepared(
        self, job_request: JobRequest, routing: RoutingPolicy, owner: str | None
    ) -> JobHandle:
        owner = checked_owner(owner)
        streak = self._streak("could not submit the job")
        with self._submitting():
            while True:  # again only when a failed send's job was taken back
                job_id = self._submitted(job_request, routing, owner, streak)
                if job_id is not None:
                    return JobHandle(self, job_id)

    def _submitted(
        self,
        completion: JobRequest,
        routing: RoutingPolicy,
        owner: str | None,
        streak: Streak,
    ) -> str | None:
        """One try of ``submit``: store the job under a fresh id and send its message. The id
        of the job the caller gets (another's, when the idempotency key names one); None when a
        failed send's job was taken back."""
        job_id = str(uuid.uuid4())
        queue = self.queue_of(routing)
        stored_id, _ = streak.call(
            lambda: self.store.create(job_id, completion, routing, owner=owner, queue=queue)
        )
        if stored_id != job_id:  # the idempotency key names a job stored before
            state = streak.call(lambda: self.store.state(stored_id))
            if state is JobState.QUEUED:
                self._republish(stored_id, queue)
            return stored_id
        # Ours: stored now, or by a try whose reply was lost (create_job.lua said so).
        return job_id if self._sent(job_id, queue, completion, streak) else None

    def _sent(self, job_id: str, queue: str, completion: JobRequest, streak: Streak) -> bool:
        """Send a stored job's message: True once it is on its way. A send that raised may
        have reached the queue all the same (the connection dropped before the reply), so it
        is never simply sent again: the job is taken back first (False: store it anew, under a
        fresh id; a message that did get through finds no job and is dropped), unless a worker
        has claimed it already (True: that message got through)."""
        started = time.monotonic()
        try:
            self._publish(job_id, queue)
            return True
        except Exception as exc:
            failure = exc
        streak.job_id = job_id  # stored: should Redis stay away now, it may still run
        if not streak.call(lambda: self.store.delete(job_id, completion)):
            return True
        streak.job_id = None
        if not is_redis_outage(failure):
            reason = redacted(str(failure), self.settings.broker_url)
            raise SubmitError(f"could not enqueue job {job_id}: {reason}") from failure
        time.sleep(streak.failed(failure, started=started))
        return False

    def complete(
        self,
        request: RequestLike,
        *,
        policy: PolicyLike = None,
        targets: Sequence[str] | None = None,
        timeout: float | None = None,
        lane: Lane | None = None,
    ) -> CompletionResult:
        """Submit and wait. Returns the result of a succeeded job; raises JobFailed (with the
        result) for a failed one and JobTimeout if ``timeout`` runs out first."""
        timeout = checked_timeout(timeout)
        result = self.submit(request, policy=policy, targets=targets, lane=lane).wait(timeout)
        if result.state is JobState.FAILED:
            raise JobFailed(result)
        return result

    def job(self, job_id: str) -> JobHandle:
        return JobHandle(self, job_id)

    def _publish(self, job_id: str, queue: str | None = None) -> None:
        """Send a job's message to ``queue`` (None: the interactive jobs queue): a name of
        Keys', as the job record keeps it, sent under the broker's name for it (queue_name)."""
        self._publisher.publish(job_id, queue_name(self.settings, queue) if queue else None)

    # --- riding out Redis -----------------------------------------------------------------------

    def _streak(self, what: str) -> Streak:
        """A streak whose RedisUnavailable names this client's Redis; a submit sets its
        ``job_id`` while its job is stored and may run."""
        return self.patience.streak(what, url=self.settings.redis_url)

    def _read(self, job_id: str, operation: Callable[[], T]) -> T:
        return self._streak(f"could not read job {job_id}").call(operation)

    async def _aread(self, job_id: str, operation: Callable[[], Awaitable[T]]) -> T:
        return await self._streak(f"could not read job {job_id}").run(operation)

    @contextlib.contextmanager
    def _submitting(self) -> Iterator[None]:
        """A Redis error that is not Redis away (a script refused, a wrong password) is a
        SubmitError, its text free of the URL's password; RedisUnavailable passes as it is."""
        try:
            yield
        except TurnoutError:
            raise
        except redis.RedisError as exc:
            reason = redacted(str(exc), self.settings.redis_url)
            raise SubmitError(f"could not store the job in Redis: {reason}") from exc

    def _republish(self, job_id: str, queue: str) -> None:
        """Send a queued job's message again, for a repeated idempotency key. The producer that
        stored the job may have died before sending its message (the usual reason a key is
        repeated); without this the job waits for the reconciler (TURNOUT_REQUEUE_AFTER). A
        spare message is harmless: it finds the job claimed or finished and does nothing. Best
        effort: the job exists whatever happens here."""
        try:
            self._publish(job_id, queue)
        except Exception as exc:
            log.warning("job %s: its message could not be sent again: %s", job_id, exc)

    def _wait_sync(
        self, job_id: str, timeout: float | None, on_waiting: OnWaiting | None = None
    ) -> bool:
        with self._lock:
            if self._sync_loop is None:
                self._sync_loop = LoopThread()
            loop = self._sync_loop
        try:
            return loop.run(self._wait_async(job_id, timeout, on_waiting))
        except concurrent.futures.CancelledError:
            raise TurnoutError(f"the client was closed while waiting for job {job_id}") from None

    # --- asyncio ------------------------------------------------------------------------------

    async def asubmit(
        self,
        request: RequestLike,
        *,
        policy: PolicyLike = None,
        targets: Sequence[str] | None = None,
        owner: str | None = None,
        lane: Lane | None = None,
    ) -> AsyncJobHandle:
        """``submit`` for asyncio: Redis through redis.asyncio, the Celery publish in a thread."""
        completion, routing = self.prepare(request, policy=policy, targets=targets, lane=lane)
        return await self._asubmit_prepared(completion, routing, owner)

    async def _asubmit_prepared(
        self, job_request: JobRequest, routing: RoutingPolicy, owner: str | None
    ) -> AsyncJobHandle:
        owner = checked_owner(owner)
        streak = self._streak("could not submit the job")
        with self._submitting():
            while True:  # as ``submit``
                job_id = await self._asubmitted(job_request, routing, owner, streak)
                if job_id is not None:
                    return AsyncJobHandle(self, job_id)

    async def _asubmitted(
        self,
        completion: JobRequest,
        routing: RoutingPolicy,
        owner: str | None,
        streak: Streak,
    ) -> str | None:
        """``_submitted`` for asyncio."""
        store = self._parts().store
        job_id = str(uuid.uuid4())
        if (routing.lane or self.lane) == "bulk" and self._bulk_queue is None:
            queue = await asyncio.to_thread(self.queue_of, routing)
        else:
            queue = self.queue_of(routing)  # no Redis call: known already
        stored_id, _ = await streak.run(
            lambda: store.create(job_id, completion, routing, owner=owner, queue=queue)
        )
        if stored_id != job_id:
            state = await streak.run(lambda: store.state(stored_id))
            if state is JobState.QUEUED:
                await asyncio.to_thread(self._republish, stored_id, queue)
            return stored_id
        return job_id if await self._asent(job_id, queue, completion, streak) else None

    async def _asent(self, job_id: str, queue: str, completion: JobRequest, streak: Streak) -> bool:
        """``_sent`` for asyncio: the publish in a thread."""
        store = self._parts().store
        started = time.monotonic()
        try:
            await asyncio.to_thread(self._publish, job_id, queue)
            return True
        except Exception as exc:
            failure = exc
        streak.job_id = job_id
        if not await streak.run(lambda: store.delete(job_id, completion)):
            return True
        streak.job_id = None
        if not is_redis_outage(failure):
            reason = redacted(str(failure), self.settings.broker_url)
            raise SubmitError(f"could not enqueue job {job_id}: {reason}") from failure
        await asyncio.sleep(streak.failed(failure, started=started))
        return False

    async def acomplete(
        self,
        request: RequestLike,
        *,
        policy: PolicyLike = None,
        targets: Sequence[str] | None = None,
        timeout: float | None = None,
        lane: Lane | None = None,
    ) -> CompletionResult:
        timeout = checked_timeout(timeout)
        handle = await self.asubmit(request, policy=policy, targets=targets, lane=lane)
        result = await handle.wait(timeout)
        if result.state is JobState.FAILED:
            raise JobFailed(result)
        return result

    # --- embeddings ---------------------------------------------------------------------------

    def prepare_embedding(
        self,
        request: EmbeddingLike,
        *,
        policy: PolicyLike = None,
        targets: Sequence[str] | None = None,
        **fields: Any,
    ) -> tuple[EmbeddingRequest, RoutingPolicy]:
        """Validate an embeddings job without submitting it: InvalidRequest on anything wrong,
        targets that cannot embed or that mix vector dimensions included."""
        embedding = as_embedding_request(request, **fields)
        routing = resolve_policy(
            self.config, policy, targets=targets, max_deadline_s=self._max_deadline_s
        )
        check_embedding_targets(self.config, routing)
        return embedding, routing

    def submit_embedding(
        self,
        request: EmbeddingLike,
        *,
        policy: PolicyLike = None,
        targets: Sequence[str] | None = None,
        owner: str | None = None,
        **fields: Any,
    ) -> JobHandle:
        """``submit`` for an embeddings job: its result's ``embeddings`` holds the vectors.
        ``fields``: ``dimensions``, ``input_type``, ``user``, ``metadata``, ``idempotency_key``."""
        embedding, routing = self.prepare_embedding(
            request, policy=policy, targets=targets, **fields
        )
        return self._submit_prepared(embedding, routing, owner)

    def embed(
        self,
        request: EmbeddingLike,
        *,
        policy: PolicyLike = None,
        targets: Sequence[str] | None = None,
        timeout: float | None = None,
        **fields: Any,
    ) -> CompletionResult:
        """Submit an embeddings job and wait: ``result.embeddings`` is one vector per text, in
        order. Raises JobFailed (with the result) for a failed one."""
        timeout = checked_timeout(timeout)
        handle = self.submit_embedding(request, policy=policy, targets=targets, **fields)
        result = handle.wait(timeout)
        if result.state is JobState.FAILED:
            raise JobFailed(result)
        return result

    async def asubmit_embedding(
        self,
        request: EmbeddingLike,
        *,
        policy: PolicyLike = None,
        targets: Sequence[str] | None = None,
        owner: str | None = None,
        **fields: Any,
    ) -> AsyncJobHandle:
        embedding, routing = self.prepare_embedding(
            request, policy=policy, targets=targets, **fields
        )
        return await self._asubmit_prepared(embedding, routing, owner)

    async def aembed(
        self,
        request: EmbeddingLike,
        *,
        policy: PolicyLike = None,
        targets: Sequence[str] | None = None,
        timeout: float | None = None,
        **fields: Any,
    ) -> CompletionResult:
        """``embed`` for asyncio."""
        timeout = checked_timeout(timeout)
        handle = await self.asubmit_embedding(request, policy=policy, targets=targets, **fields)
        result = await handle.wait(timeout)
        if result.state is JobState.FAILED:
            raise JobFailed(result)
        return result

    def ajob(self, job_id: str) -> AsyncJobHandle:
        return AsyncJobHandle(self, job_id)

    async def aping(self) -> None:
        """Raise unless Redis answers a PING (on this loop's connections: no thread)."""
        await self._parts().client.ping()

    def _parts(self) -> _AsyncParts:
        """redis.asyncio connections belong to one event loop: one set per loop. Sets whose
        loop has closed (``asyncio.run`` called again and again) are dropped."""
        loop = asyncio.get_running_loop()
        parts = self._async_parts.get(loop)
        if parts is None:
            for gone in [other for other in self._async_parts if other.is_closed()]:
                del self._async_parts[gone]
            pool = aioredis.BlockingConnectionPool.from_url(
                self.settings.redis_url,
                max_connections=MAX_CONNECTIONS,
                timeout=10,
                decode_responses=True,
                socket_connect_timeout=5,
                socket_timeout=SOCKET_TIMEOUT_S,
            )
            client = aioredis.Redis.from_pool(pool)  # owns the pool: aclose disconnects it
            parts = _AsyncParts(
                client,
                AsyncJobStore(
                    client,
                    self.keys,
                    ttl_s=self.settings.job_ttl_s,
                    requeue_after_s=self.settings.requeue_after_s,
                ),
                CompletionListener(client, self.keys),
            )
            self._async_parts[loop] = parts
        return parts

    async def _wait_async(
        self, job_id: str, timeout: float | None, on_waiting: OnWaiting | None = None
    ) -> bool:
        """True once the job finished; False when ``timeout`` ran out, whatever was slow.
        ``on_waiting`` hears, at a re-check, that the job waits for routes to return: once,
        and again only when what it waits for changes."""
        parts = self._parts()
        told: list[object] = []
        streak = self._streak(f"could not wait for job {job_id}")

        async def finished() -> bool:
            state, waiting = await parts.store.progress(job_id)
            streak.ok()  # Redis answers: an outage later is a new streak
            if state is None:
                raise JobNotFound(job_id)
            if on_waiting is not None and waiting is not None:
                what = [(r.route, r.reason) for r in waiting.routes]
                if what not in told:
                    told.append(what)
                    on_waiting(waiting)
            return state.is_terminal

        loop = asyncio.get_running_loop()
        end = None if timeout is None else loop.time() + timeout
        try:
            async with asyncio.timeout(timeout):
                while True:  # again, subscription and all, after Redis was away
                    streak.trying()
                    left = None if end is None else max(0.0, end - loop.time())
                    try:
                        return await parts.listener.wait_for(job_id, finished, left)
                    except Exception as exc:
                        await asyncio.sleep(streak.failed(exc))
        except TimeoutError:
            return False

    async def aclose(self) -> None:
        """Close this event loop's Redis connections (``close`` closes the rest)."""
        parts = self._async_parts.pop(asyncio.get_running_loop(), None)
        if parts is not None:
            await parts.close()

    def close(self) -> None:
        """Close every connection of the sync side: job records, the wait loop's, the broker's.
        Each event loop's own are closed by ``aclose`` on that loop (``async with`` does both)."""
        with self._lock:
            loop, self._sync_loop = self._sync_loop, None
        if loop is not None:
            loop.cancel_pending()  # other threads' waits end now, before their connections
            with contextlib.suppress(Exception):
                loop.run_with_timeout(self.aclose(), 5)
            loop.stop()
        self._publisher.close()
        self.store.redis.close()
        self.store.redis.connection_pool.disconnect()  # a pool passed in is not closed by close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *_: object) -> None:
        """This loop's connections, then the sync side's (in a thread: closing the wait loop
        joins its thread, which must not block this loop)."""
        await self.aclose()
        await asyncio.to_thread(self.close)


def checked_lane(lane: str) -> Lane:
    """``lane`` as a Lane; InvalidRequest (before anything is stored) when it names none."""
    for known in LANES:
        if lane == known:
            return known
    raise InvalidRequest(f"unknown lane {lane!r}: choose from {', '.join(LANES)}")


class _AsyncParts:
    def __init__(
        self, client: aioredis.Redis, store: AsyncJobStore, listener: CompletionListener
    ) -> None:
        self.client = client
        self.store = store
        self.listener = listener

    async def close(self) -> None:
        await self.listener.close()
        await self.client.aclose()
