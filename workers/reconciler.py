"""The reconciler: no job stays queued or running forever because a message went missing.

A producer can die between storing a job and sending its message, Redis can lose a message with
its last second of writes (README, "When Redis loses writes"), and a worker that died mid-job
leaves a job "running" under a lease nobody renews. (A message taken by a worker that died
before claiming it no longer needs this: routing.broker puts a dead consumer's messages back
within seconds.) The job record knows: a job still queued past TURNOUT_REQUEUE_AFTER, or running
with an expired lease, gets its run_job message again. A
duplicate message is harmless (it finds the job finished or leased), and the pick is one Lua
script that moves each job's next check forward, so two beats never re-send one job twice.
Each message goes to the queue its job record names (its lane's, routing.lanes): a re-sent batch
job stays in bulk, behind no web request and ahead of none.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from routing.jobstore import JobStore

log = logging.getLogger("turnout.reconciler")

#: Most jobs handled per run; the rest wait for the next run.
BATCH = 500


@dataclass(frozen=True)
class ReconcileReport:
    requeued: Counter[str] = field(default_factory=Counter)
    failed_to_send: int = 0

    def as_dict(self) -> dict[str, int]:
        return {**self.requeued, "failed_to_send": self.failed_to_send}


def reconcile_due(
    store: JobStore,
    send: Callable[[str, str | None], None],
    *,
    recheck_s: float,
    limit: int = BATCH,
) -> ReconcileReport:
    """Re-send the messages of jobs that lost theirs; ``send(job_id, queue)`` publishes one to
    the job's queue (None: the record names none, the default queue)."""
    requeued: Counter[str] = Counter()
    failed = 0
    due = store.pick_due(limit=limit, recheck_s=recheck_s)
    queues = store.queues_of([job_id for job_id, _ in due]) if due else []
    for (job_id, reason), queue in zip(due, queues, strict=True):
        try:
            send(job_id, queue)
        except Exception as exc:  # the job is picked again after recheck_s
            failed += 1
            log.warning("could not re-send job %s (%s): %s", job_id, reason, exc)
            continue
        requeued[reason] += 1
        log.info("re-sent job %s (%s)", job_id, reason)
    return ReconcileReport(requeued, failed)
