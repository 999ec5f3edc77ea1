"""Keeping the leases of running jobs alive.

A job's lease is short (TURNOUT_LEASE_S, 30 s by default) so that the jobs of a worker that died
become claimable again soon. A live worker renews every lease it holds in one round trip, every
third of the lease, from one thread per process.

A renewal that finds a lease gone is a warning when it is a loss (another worker took the job
over while this one still runs it), and nothing to worry about when the run's own thread ended
it: its finish (or its release for a reschedule) went out between the renewal's snapshot of the
leases and the renewal itself. The runtime says so first (``ending``), so the two read apart.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import redis

from routing.jobstore import JobStore

log = logging.getLogger("turnout.leases")


@dataclass
class _Held:
    token: str
    #: renewed until then at most (monotonic seconds)
    until: float
    #: the run's own thread is writing its end (finish or release): a lease found gone now is
    #: that write's doing
    ending: bool = False


class LeaseKeeper:
    def __init__(self, store: JobStore, *, lease_s: float) -> None:
        self._store = store
        self._lease_s = lease_s
        self._held: dict[str, _Held] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self, job_id: str, token: str, *, for_s: float) -> None:
        """Keep the lease alive for at most ``for_s`` seconds: a run that somehow outlives its
        deadline lets its lease lapse, so the job does not stay pinned to a stuck worker."""
        with self._lock:
            self._held[job_id] = _Held(token, time.monotonic() + for_s)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._renew_forever, name="turnout-leases", daemon=True
                )
                self._thread.start()

    def ending(self, job_id: str) -> None:
        """The run is about to end its lease itself (its finish, or its release): still renewed
        until ``release`` (a finish retried through a Redis hiccup needs it), but a renewal that
        finds it gone meanwhile found that write, not a loss."""
        with self._lock:
            held = self._held.get(job_id)
            if held is not None:
                held.ending = True

    def release(self, job_id: str) -> None:
        with self._lock:
            self._held.pop(job_id, None)

    def held(self) -> dict[str, str]:
        """The leases still worth renewing: job id -> token."""
        now = time.monotonic()
        with self._lock:
            return {job_id: h.token for job_id, h in self._held.items() if h.until > now}

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
                self._gone(job_id, leases[job_id])

    def _gone(self, job_id: str, token: str) -> None:
        with self._lock:
            held = self._held.get(job_id)
            running = held is not None and held.token == token and not held.ending
            if held is not None and held.token == token:
                del self._held[job_id]
        if running:
            log.warning("lost the lease on job %s (finished or taken over)", job_id)
        else:
            log.debug("the lease on job %s ended with its run (finished or rescheduled)", job_id)

    def _renew_forever(self) -> None:
        while not self._stop.wait(self._lease_s / 3):
            self.renew_now()
