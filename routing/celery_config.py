"""Celery's configuration, derived from CoreSettings: at-least-once delivery on Redis.

What loses or duplicates jobs on Celery + Redis, and why each line is here, is in
../shared/celery-reliability.md §1:
  * acks_late + reject_on_worker_lost: a message is acknowledged only after its job finished,
    and a worker that dies mid-job gives it back instead of losing it;
  * no cancelling on a broker connection loss (``worker_cancel_long_running_tasks_on_connection_
    loss`` off): that setting terminates the acks_late tasks whose ack the lost connection can
    no longer carry, so that their redelivered messages do not run them twice in parallel. The
    threads pool cannot terminate a task (Celery's BasePool.terminate_job raises
    NotImplementedError), so it did nothing but log a traceback per task in flight on every
    blip. What it was for holds without it: the messages come back (kombu restores a lost
    channel's unacked messages, or the visibility timeout does), and the job record, not the
    message, decides who runs a job: a redelivered message finds the job's live lease and looks
    again when it ends, then finds the job finished and is acknowledged, while the task that
    could not ack runs on to its finish. So a blip logs one line, and every job still runs once;
  * prefetch multiplier 1: a worker holds no more messages than it runs;
  * one visibility timeout, set in all three places Celery reads it (broker transport, result
    backend transport, app), above the longest job a producer may submit;
  * JSON only: a message is a job id, never a pickle;
  * the job record, not Celery's result backend, holds results: run_job ignores its result,
    which saves a Redis write per job, and results that are stored expire after an hour;
  * task events (TURNOUT_TASK_EVENTS, on by default) are what Flower shows: a Redis PUBLISH per
    state change that nothing stores, carrying the job id and the task's small summary only;
    +1.2 ms per job and -18 % throughput per worker, measured (``CoreSettings.task_events`` in
    routing.settings).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from celery import Celery
from kombu.entity import Exchange, Queue

from routing.keys import Keys
from routing.lanes import worker_queues
from routing.settings import CoreSettings

RUN_JOB_TASK = "turnout.run_job"
RECONCILE_TASK = "turnout.reconcile"
HEALTH_CHECK_TASK = "turnout.health_check"

#: Time to claim and finish a job, and clock slack, on top of its deadline and lease.
VISIBILITY_MARGIN_S = 5.0
#: The longest a beat tick waits on an idle worker before it is picked up: the transport blocks
#: on the jobs queue for kombu's brpop_timeout (1 s) and looks at the control queue between
#: blocks (routing.broker).
CONTROL_PICKUP_S = 1.0


def max_job_deadline_s(settings: CoreSettings) -> float:
    """The longest ``deadline_s`` a producer may submit on this stack.

    Redis redelivers an unacknowledged message after the visibility timeout, to any worker. A
    redelivered message must find the job finished, or its lease expired (its worker died), never
    a live run: so a run (deadline) plus the lease of a worker that died at its end plus the margin
    must fit inside the visibility timeout.
    """
    return settings.visibility_timeout_s - settings.lease_s - VISIBILITY_MARGIN_S


def reschedule_countdown_s(settings: CoreSettings, wait_s: float) -> float:
    """The countdown of a job rescheduled to wait ``wait_s`` for a route.

    A worker holds an ETA message unacknowledged until its countdown ends; near the visibility
    timeout, Redis would hand it to a second worker meanwhile. A wait longer than a quarter of
    the timeout is taken in steps: the job runs, finds every route still away, and waits again.
    """
    return max(0.0, min(wait_s, settings.visibility_timeout_s / 4))


def celery_config(settings: CoreSettings) -> dict[str, Any]:
    keys = Keys(settings.namespace)
    visibility = settings.visibility_timeout_s
    broker_options = {
        "visibility_timeout": visibility,
        "global_keyprefix": keys.prefix,
        "socket_timeout": 30,
        "socket_connect_timeout": 5,
        "health_check_interval": 25,
        "retry_on_timeout": True,
        "unacked_restore_interval": settings.unacked_restore_interval_s,
        "unacked_restore_throttle": settings.unacked_restore_throttle,
        # Acks come from the pool's threads: room for all of them (routing.broker blocks beyond).
        "max_connections": settings.worker_concurrency + 32,
    }
    return {
        "broker_url": settings.redis_url,
        "broker_transport": "routing.broker:Transport",
        "result_backend": settings.redis_url,
        "broker_transport_options": broker_options,
        "result_backend_transport_options": {
            "visibility_timeout": visibility,
            "global_keyprefix": keys.prefix,
        },
        "visibility_timeout": visibility,
        "broker_connection_retry_on_startup": True,
        "task_default_queue": keys.queue,
        # Beat's tasks have a queue of their own, which every worker also consumes (kombu takes
        # its queues in turn): in the jobs queue a tick would wait behind the whole backlog and
        # expire, so no health check, failback probe or reconcile would run while one drains.
        # And each lane its queues (routing.lanes): interactive first, bulk in turn.
        "task_queues": [_queue(name) for name in worker_queues(keys, settings)],
        "task_routes": {
            HEALTH_CHECK_TASK: {"queue": keys.control_queue},
            RECONCILE_TASK: {"queue": keys.control_queue},
        },
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "result_expires": 3600,
        "result_extended": False,
        "task_ignore_result": True,
        "worker_send_task_events": settings.task_events,
        "task_send_sent_event": settings.task_events,
        "worker_pool": "threads",
        "worker_concurrency": settings.worker_concurrency,
        # Off, and said so (Celery 6 turns it on by default): see the module docstring.
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "worker_soft_shutdown_timeout": 30.0,
        "worker_enable_soft_shutdown_on_idle": True,
        "worker_hijack_root_logger": True,
        # None would disable the pool (a new connection per publish: ~8 ms each, measured);
        # threaded producers (web apps) publish from many threads, so more than the default 10.
        "broker_pool_limit": 50,
        "beat_schedule": {
            "turnout-reconcile": {
                "task": RECONCILE_TASK,
                "schedule": settings.reconcile_every_s,
                # A reconcile that waited longer than its period is stale: the next one replaces it.
                "options": {"expires": settings.reconcile_every_s + CONTROL_PICKUP_S},
            },
            "turnout-health-check": {
                "task": HEALTH_CHECK_TASK,
                "schedule": settings.health_tick_s,
                # Each tick only claims what is due; a tick stuck behind a backlog is worthless
                # once the next one is sent, and skipping it loses no check. An idle worker looks
                # at the control queue between its blocks on the jobs queue (routing.broker), so
                # a tick may wait that long before it is picked up: it lives that much longer.
                "options": {"expires": settings.health_tick_s + CONTROL_PICKUP_S},
            },
        },
        "timezone": "UTC",
    }


def _queue(name: str) -> Queue:
    """A queue as Celery declares its default one: a direct exchange of the same name."""
    return Queue(name, Exchange(name), routing_key=name)  # type: ignore[no-untyped-call]


def create_app(settings: CoreSettings | None = None, *, include: Sequence[str] = ()) -> Celery:
    """A Celery app on ``settings``. A producer's app names no task module: it sends tasks by
    name (``RUN_JOB_TASK``); the worker's own app (workers.app) includes its tasks."""
    app = Celery("turnout", include=list(include))
    app.conf.update(celery_config(settings or CoreSettings()))
    return app
