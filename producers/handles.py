"""Handles to submitted jobs: what ``Client.submit`` and ``Client.asubmit`` return.

A handle holds the job id and its client; every read goes through the client, so it rides out
Redis going away as the client does (``TURNOUT_REDIS_PATIENCE_S``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from producers.arguments import checked_timeout
from routing.errors import JobNotFound, JobTimeout
from routing.jobstore import StoredJob
from routing.models import CompletionResult, JobState, Waiting

if TYPE_CHECKING:
    from producers.client import Client

#: Told what a job waits for when it starts waiting for its routes (``JobHandle.wait``).
OnWaiting = Callable[[Waiting], None]


class JobHandle:
    """A submitted job, for sync code."""

    def __init__(self, client: Client, job_id: str) -> None:
        self.client = client
        self.job_id = job_id

    def state(self) -> JobState:
        """The job's state now (one Redis read); ``AsyncJobHandle.state`` is its awaitable twin.
        JobNotFound when no job has this id."""
        store = self.client.store
        state = self.client._read(self.job_id, lambda: store.state(self.job_id))
        if state is None:
            raise JobNotFound(self.job_id)
        return state

    def result(self) -> CompletionResult:
        """The job as it stands now, without waiting (``state`` says whether it finished)."""
        store = self.client.store
        result = self.client._read(self.job_id, lambda: store.get(self.job_id))
        if result is None:
            raise JobNotFound(self.job_id)
        return result

    def read(self) -> StoredJob:
        """The job as it stands now, with its owner (``Client.submit``'s ``owner``)."""
        store = self.client.store
        stored = self.client._read(self.job_id, lambda: store.read(self.job_id))
        if stored is None:
            raise JobNotFound(self.job_id)
        return stored

    def wait(
        self, timeout: float | None = None, *, on_waiting: OnWaiting | None = None
    ) -> CompletionResult:
        """Block until the job finishes; its result, succeeded or failed. JobTimeout otherwise,
        saying what the job waits for if it does. ``on_waiting`` (called on the client's own
        thread) hears when the job starts waiting for its routes to return."""
        timeout = checked_timeout(timeout)
        if not self.client._wait_sync(self.job_id, timeout, on_waiting):
            raise JobTimeout(self.job_id, timeout or 0, waiting=self.result().waiting)
        return self.result()

    def __repr__(self) -> str:
        return f"JobHandle({self.job_id!r})"


class AsyncJobHandle:
    """A submitted job, for asyncio code."""

    def __init__(self, client: Client, job_id: str) -> None:
        self.client = client
        self.job_id = job_id

    async def state(self) -> JobState:
        """The job's state now, as ``JobHandle.state`` reads it, without blocking the loop."""
        store = self.client._parts().store
        state = await self.client._aread(self.job_id, lambda: store.state(self.job_id))
        if state is None:
            raise JobNotFound(self.job_id)
        return state

    async def result(self) -> CompletionResult:
        store = self.client._parts().store
        result = await self.client._aread(self.job_id, lambda: store.get(self.job_id))
        if result is None:
            raise JobNotFound(self.job_id)
        return result

    async def read(self) -> StoredJob:
        """The job as it stands now, with its owner, in one round trip as ``result`` takes."""
        store = self.client._parts().store
        stored = await self.client._aread(self.job_id, lambda: store.read(self.job_id))
        if stored is None:
            raise JobNotFound(self.job_id)
        return stored

    async def wait(
        self, timeout: float | None = None, *, on_waiting: OnWaiting | None = None
    ) -> CompletionResult:
        """As ``JobHandle.wait``; ``on_waiting`` is called on this loop."""
        timeout = checked_timeout(timeout)
        if not await self.client._wait_async(self.job_id, timeout, on_waiting):
            waiting = (await self.result()).waiting
            raise JobTimeout(self.job_id, timeout or 0, waiting=waiting)
        return await self.result()

    def __repr__(self) -> str:
        return f"AsyncJobHandle({self.job_id!r})"
