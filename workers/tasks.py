"""Celery tasks: thin adapters from a message to a plain function (workers.runtime)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from celery import Task, signals

from routing.celery_config import HEALTH_CHECK_TASK, RECONCILE_TASK, RUN_JOB_TASK, queue_name
from routing.models import JobState
from workers.app import app
from workers.execution import CallStarted
from workers.reconciler import reconcile_due
from workers.runtime import TaskReport, get_runtime
from workers.task_states import JobFailedError, JobRequest, RouteWait

log = logging.getLogger(__name__)

#: Sent by a worker right before each provider call of a job. Celery's event state, and so
#: Flower, turns a ``task-*`` event it does not know into a task state named after it: the task
#: shows ``CALLING`` until its next call or its end.
CALLING_EVENT = "task-calling"


@app.task(
    name=RUN_JOB_TASK,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    max_retries=None,
    # Flower's FAILURE for a failed job (workers.task_states), its message still acknowledged;
    # expected, so logged in one line without a traceback.
    acks_on_failure_or_timeout=True,
    throws=(JobFailedError,),
    Request=JobRequest,
)
def run_job(self: Task, job_id: str) -> dict[str, Any]:
    """Run one job to completion. The message carries the job id only; the job record in Redis
    carries everything else. Returns a small summary (never the completion text); a job that
    ended ``failed`` raises JobFailedError once its record is written."""
    report = get_runtime().run_job(job_id, on_call=call_announcer(self))
    if report.retry_in_s is not None:
        # Another worker holds the job's lease, or every target refuses the job for longer than a
        # worker should wait (the slot is freed). Either countdown is shorter than the visibility
        # timeout: a lease is far shorter, and a reschedule never outlasts the job's deadline,
        # which producers keep below max_job_deadline_s. So the ETA message held by a worker is
        # never redelivered while it waits.
        raise self.retry(countdown=report.retry_in_s, exc=route_wait(report))
    if report.summary.get("state") == JobState.FAILED.value:
        raise JobFailedError(job_id, str(report.summary.get("error_class", "unknown")))
    return report.summary


def route_wait(report: TaskReport) -> RouteWait | None:
    """What a rescheduled job waits for, when it is routes (Flower shows it as WAITING)."""
    if not report.waiting_for or report.retry_in_s is None:
        return None
    return RouteWait(report.waiting_for, until=time.time() + report.retry_in_s)


def call_announcer(task: Task) -> Callable[[CallStarted], None]:
    """What tells monitors which deployment a running job is calling: a ``task-calling`` event
    per provider call, sent when the worker sends task events at all.

    An event rather than ``update_state``: a PUBLISH that nothing stores, where ``update_state``
    would write the result backend on every call, watched or not. Best effort: a monitoring
    message that cannot go out never holds up or fails a job.
    """

    def announce(call: CallStarted) -> None:
        fields = calling_fields(call)
        try:
            dispatcher = worker_event_dispatcher()
            if dispatcher is not None:
                # As the worker's own task-started and task-succeeded go: sent only while it
                # sends task events (the setting, -E, Flower's enable_events), and published by
                # its event loop, not this thread.
                dispatcher.send(CALLING_EVENT, uuid=task.request.id, **fields)
            elif task.app.conf.worker_send_task_events:
                task.send_event(CALLING_EVENT, retry=False, **fields)
        except Exception as exc:
            log.debug("job %s: %s event not sent: %s", task.request.id, CALLING_EVENT, exc)

    return announce


def calling_fields(call: CallStarted) -> dict[str, Any]:
    """The fields of a ``task-calling`` event: names and counters, never a prompt or a key."""
    return {
        "deployment": call.deployment,
        "attempt": call.attempt,
        "run": call.run,
        # Flower's task list, task page and API show Celery's own task fields only
        # (celery.events.state.Task._fields), so the same facts ride in ``result`` too, which all
        # three show and Flower's search indexes. The finished job's summary replaces it.
        "result": f"calling {call.deployment}: attempt {call.attempt}, run {call.run}",
    }


class _Worker:
    #: The consumer of the worker running in this process, once it is ready.
    consumer: Any = None


@signals.worker_ready.connect
def _remember_consumer(sender: Any = None, **_: Any) -> None:
    _Worker.consumer = sender


def worker_event_dispatcher() -> Any:
    """The event dispatcher of the worker in this process (the one Celery's remote control
    commands switch), or None outside a worker's main process."""
    return getattr(_Worker.consumer, "event_dispatcher", None)


def send_run_job(job_id: str, queue: str | None = None) -> None:
    """A job's message, to ``queue`` (its lane's, as the job record says, under the broker's
    name for it: queue_name), else the interactive jobs queue (a job stored before lanes)."""
    run_job.apply_async(
        args=[job_id],
        task_id=job_id,
        argsrepr=repr(job_id),
        queue=queue_name(get_runtime().settings, queue) if queue else app.conf.task_default_queue,
    )


#: Beat's control tasks send no task events: at one every few seconds each, they would push
#: ``run_job`` out of Flower's task list (and its bounded memory of tasks). Their results are in
#: the worker's log; beat sends no ``task-sent`` for them either (workers.app).
CONTROL_TASK_OPTIONS: dict[str, Any] = {"ignore_result": True, "send_events": False}


@app.task(name=RECONCILE_TASK, **CONTROL_TASK_OPTIONS)
def reconcile() -> dict[str, int]:
    """Beat's safety net (workers.reconciler): re-send the messages of lost jobs."""
    runtime = get_runtime()
    settings = runtime.settings
    report = reconcile_due(
        runtime.store, send_run_job, recheck_s=max(settings.requeue_after_s, settings.lease_s)
    )
    return report.as_dict()


@app.task(name=HEALTH_CHECK_TASK, **CONTROL_TASK_OPTIONS)
def health_check() -> dict[str, Any]:
    """Beat's health checks (workers.health): check the routes that are due, fleet-wide once per
    interval however many beats send this; an open breaker past its cool-down is checked as its
    half-open probe, which is how a recovered provider wins its traffic back. Returns counts and
    route ids only (Flower shows it)."""
    checker = get_runtime().health
    results = checker.run() if checker is not None else []
    return {
        "checked": len(results),
        "ok": sum(1 for r in results if r.ok),
        "probes": sum(1 for r in results if r.probe),
        "failing": sorted(r.route_id for r in results if r.health == "failing"),
    }
