"""Every Redis key and channel turnout uses, in one place.

All keys start with the namespace (TURNOUT_NAMESPACE, default ``turnout``), so several stacks or
test runs share one Redis without touching each other. Celery's own keys (queues, unacked
messages) carry the same prefix through kombu's ``global_keyprefix``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    namespace: str = "turnout"

    @property
    def prefix(self) -> str:
        """kombu's ``global_keyprefix``: Celery's keys live under the namespace too."""
        return f"{self.namespace}:"

    @property
    def queue(self) -> str:
        """The Celery queue of run_job messages (stored as ``<prefix>jobs`` in Redis)."""
        return "jobs"

    @property
    def control_queue(self) -> str:
        """The Celery queue of beat's tasks (health checks, the reconciler), stored as
        ``<prefix>control``: its own queue so they never wait behind a backlog of jobs."""
        return "control"

    def job(self, job_id: str) -> str:
        """Hash: the job record (state, request, policy, lease, outcome)."""
        return f"{self.namespace}:job:{job_id}"

    def attempts(self, job_id: str) -> str:
        """List: the job's attempt log, one JSON object per provider call."""
        return f"{self.namespace}:job:{job_id}:attempts"

    def idempotency(self, key: str) -> str:
        """String: the job id a producer's idempotency key maps to."""
        return f"{self.namespace}:idem:{key}"

    @property
    def due(self) -> str:
        """Sorted set: unfinished job ids, scored by when the reconciler should look at each."""
        return f"{self.namespace}:jobs:due"

    @property
    def job_counts(self) -> str:
        """Hash: jobs queued and running now; ``<this>:<UTC day number>`` hashes count the jobs
        created, succeeded and failed that day (kept three days)."""
        return f"{self.namespace}:jobs:counts"

    def job_counts_today(self) -> str:
        """Hash: the jobs created, succeeded and failed today (the UTC day of ``job_counts``'
        scripts, which write ``<job_counts>:<day number>``)."""
        return f"{self.job_counts}:{int(time.time() // 86400)}"

    @property
    def reconciler_counts(self) -> str:
        """Hash: how many messages the reconciler re-sent, by reason."""
        return f"{self.namespace}:reconciler"

    @property
    def route_prefix(self) -> str:
        """Prefix of a route's breaker hash and its :probes, :inflight and :window keys
        (routing.fleet_scripts)."""
        return f"{self.namespace}:route:"

    def done_channel(self, job_id: str) -> str:
        """Pub/sub channel announcing that the job finished (payload: its state)."""
        return f"{self.namespace}:done:{job_id}"

    def done_channel_pattern(self) -> str:
        return f"{self.namespace}:done:*"

    def job_id_from_channel(self, channel: str) -> str:
        return channel[len(f"{self.namespace}:done:") :]
