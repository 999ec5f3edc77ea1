"""Celery tasks: thin adapters from a message to a plain function (workers.runtime)."""

from __future__ import annotations

from typing import Any

from celery import Task

from workers.app import app
from workers.celery_config import RECONCILE_TASK, RUN_JOB_TASK
from workers.reconciler import reconcile_due
from workers.runtime import get_runtime


@app.task(
    name=RUN_JOB_TASK,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    max_retries=None,
)
def run_job(self: Task, job_id: str) -> dict[str, Any]:
    """Run one job to completion. The message carries the job id only; the job record in Redis
    carries everything else. Returns a small summary (never the completion text)."""
    report = get_runtime().run_job(job_id)
    if report.retry_in_s is not None:
        # Another worker holds the job's lease, or every target refuses the job for longer than a
        # worker should wait (the slot is freed). Either countdown is shorter than the visibility
        # timeout: a lease is far shorter, and a reschedule never outlasts the job's deadline,
        # which producers keep below max_job_deadline_s. So the ETA message held by a worker is
        # never redelivered while it waits.
        raise self.retry(countdown=report.retry_in_s)
    return report.summary


def send_run_job(job_id: str) -> None:
    run_job.apply_async(args=[job_id], task_id=job_id, argsrepr=repr(job_id))


@app.task(name=RECONCILE_TASK, ignore_result=True)
def reconcile() -> dict[str, int]:
    """Beat's safety net (workers.reconciler): re-send the messages of lost jobs."""
    runtime = get_runtime()
    settings = runtime.settings
    report = reconcile_due(
        runtime.store, send_run_job, recheck_s=max(settings.requeue_after_s, settings.lease_s)
    )
    return report.as_dict()
