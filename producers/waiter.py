"""Waiting for jobs to finish without polling: one pub/sub connection per client.

A worker that finishes a job publishes on the job's channel. A waiter subscribes to that channel,
waits for Redis to confirm the subscription, and only then reads the job's state: a job that
finished in between is seen by the read, and one that finishes later by the message. The state
is read again every few seconds in case a message was lost (a reconnect drops in-flight
messages), so a lost message costs seconds, never a hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import redis
import redis.asyncio as aioredis

from routing.keys import Keys
from routing.redis_text import as_text

log = logging.getLogger("turnout.producer")

#: How often a waiter re-reads the job state in case a notification was lost.
RECHECK_S = 2.0


class CompletionListener:
    def __init__(self, client: aioredis.Redis, keys: Keys) -> None:
        self._client = client
        self._keys = keys
        self._pubsub: Any = None
        self._task: asyncio.Task[None] | None = None
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._confirmations: dict[str, asyncio.Future[None]] = {}
        self._lock = asyncio.Lock()

    async def wait_for(
        self,
        job_id: str,
        is_finished: Callable[[], Awaitable[bool]],
        timeout: float | None,
    ) -> bool:
        """Wait until ``is_finished()`` holds; False when ``timeout`` ran out first."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        channel = self._keys.done_channel(job_id)
        self._waiters.setdefault(job_id, set()).add(done)
        try:
            await self._subscribe(channel)
            if await is_finished():
                return True
            end = None if timeout is None else loop.time() + timeout
            while True:
                remaining = RECHECK_S if end is None else min(RECHECK_S, end - loop.time())
                if remaining <= 0:
                    return False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(done), remaining)
                    return True
                if await is_finished():
                    return True
        finally:
            await self._forget(job_id, channel, done)

    async def _subscribe(self, channel: str) -> None:
        async with self._lock:
            if self._pubsub is None:
                self._pubsub = self._client.pubsub()
            confirmation = self._confirmations.get(channel)
            if confirmation is None:
                confirmation = asyncio.get_running_loop().create_future()
                self._confirmations[channel] = confirmation
                await self._pubsub.subscribe(channel)
            if self._task is None or self._task.done():
                self._task = asyncio.create_task(self._listen(), name="turnout-completions")
        # A lost confirmation only costs the first re-check; never wait on it forever.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(confirmation), RECHECK_S)

    async def _forget(self, job_id: str, channel: str, done: asyncio.Future[None]) -> None:
        """Drop one waiter; unsubscribe when it was the job's last. Decided under the lock, so a
        waiter arriving meanwhile for the same job never finds its subscription withdrawn."""
        async with self._lock:
            waiters = self._waiters.get(job_id, set())
            waiters.discard(done)
            if waiters:
                return
            self._waiters.pop(job_id, None)
            self._confirmations.pop(channel, None)
            if self._pubsub is not None:
                with contextlib.suppress(redis.RedisError):
                    await self._pubsub.unsubscribe(channel)

    async def _listen(self) -> None:
        away = False  # one line when Redis goes, one when it is back: not one per second
        while self._confirmations:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except (redis.RedisError, OSError) as exc:
                if not away:
                    log.warning(
                        "completion listener lost Redis (%s); waiters fall back to re-checks",
                        exc,
                    )
                away = True
                await asyncio.sleep(0.5)
                continue
            if away:
                log.info("completion listener has Redis again")
                away = False
            if message is None:
                continue
            channel = as_text(message.get("channel"))
            if message["type"] == "subscribe":
                confirmation = self._confirmations.get(channel)
                if confirmation is not None and not confirmation.done():
                    confirmation.set_result(None)
            elif message["type"] == "message":
                for waiter in self._waiters.get(self._keys.job_id_from_channel(channel), ()):
                    if not waiter.done():
                        waiter.set_result(None)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, redis.RedisError):
                await self._task
        if self._pubsub is not None:
            with contextlib.suppress(redis.RedisError):
                await self._pubsub.aclose()
