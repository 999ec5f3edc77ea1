"""Keeping the leases of running jobs alive.

A job's lease is short (TURNOUT_LEASE_S, 30 s by default) so that the jobs of a worker that died
become claimable again soon. A live worker renews every lease it holds in one round trip, every
third of the lease, from one thread per process.
"""

from __future__ import annotations

import logging
import threading
import time

import redis

from routing.jobstore import JobStore

log = logging.getLogger("turnout.leases")


class LeaseKeeper:
    def __init__(self, store: JobStore, *, lease_s: float) -> None:
        self._store = store
        self._lease_s = lease_s
        self._held: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self, job_id: str, token: str, *, for_s: float) -> None:
        """Keep the lease alive for at most ``for_s`` seconds: a run that somehow outlives its
        deadline lets its lease lapse, so the job does not stay pinned to a stuck worker."""
        with self._lock:
            self._held[job_id] = (token, time.monotonic() + for_s)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._renew_forever, name="turnout-leases", daemon=True
                )
                self._thread.start()

    def release(self, job_id: str) -> None:
        with self._lock:
            self._held.pop(job_id, None)

    def held(self) -> dict[str, str]:
        """The leases still worth renewing: job id -> token."""
        now = time.monotonic()
        with self._lock:
            return {job_id: token for job_id, (token, until) in self._held.items() if until > now}

    def stop(self) -> None:
        self._stop.set()

    def renew_now(self) -> None:
        leases = self.held()
        try:
            still_ours = self._store.renew(leases, lease_s=self._lease_s)
        except redis.RedisError as exc:
            log.warning("could not renew %d job leases: %s", len(leases), exc)
            return
        for job_id, ours in still_ours.items():
            if not ours:
                log.warning("lost the lease on job %s (finished or taken over)", job_id)
                with self._lock:
                    held = self._held.get(job_id)
                    if held is not None and held[0] == leases[job_id]:
                        del self._held[job_id]

    def _renew_forever(self) -> None:
        while not self._stop.wait(self._lease_s / 3):
            self.renew_now()
