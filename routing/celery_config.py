"""Celery's configuration, derived from CoreSettings: at-least-once delivery on Redis, or on
RabbitMQ with Redis for the rest (TURNOUT_BROKER_URL; _amqp_config says what differs).

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
  * one visibility timeout, set in both places Celery reads it (broker transport, app), above
    the longest job a producer may submit;
  * JSON only: a message is a job id, never a pickle;
  * the job record holds results, and no task stores one (``task_ignore_result``): so there is
    no result backend at all (Celery's DisabledBackend), rather than a Redis one that each pool
    thread would build and every task would call into for nothing;
  * task events (TURNOUT_TASK_EVENTS, off by default) are what Flower shows: a Redis PUBLISH per
    state change that nothing stores, carrying the job id and the task's small summary only.
    Off, a worker still sends them while a monitor asks (workers.event_switch); on, always, at
    ~1.5 ms per job (``CoreSettings.task_events`` in routing.settings).
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

#: kombu's py-amqp transport with its frames written under a lock (routing.amqp_transport).
AMQP_TRANSPORT = "routing.amqp_transport:Transport"
#: What a producer's connections add on an amqp broker: publisher confirms.
PRODUCER_TRANSPORT_OPTIONS = {"confirm_publish": True}

#: Time to claim and finish a job, and clock slack, on top of its deadline and lease.
VISIBILITY_MARGIN_S = 5.0
#: The longest a beat tick waits on an idle worker before it is picked up: the transport blocks
#: on the jobs queue for kombu's brpop_timeout (1 s) and looks at the control queue between
#: blocks (routing.broker).
CONTROL_PICKUP_S = 1.0


def delivery_timeout_s(settings: CoreSettings) -> int:
    """How long the broker lets a message stay unacknowledged before something gives it back.

    Redis (kombu): the visibility timeout, after which any worker may be handed the message
    again. RabbitMQ: its ``consumer_timeout`` (default 30 min), after which the server closes
    the consumer's channel and requeues everything that channel held. Either way a job held
    longer is delivered twice, so both bound the longest job the same way.
    """
    if settings.broker_is_amqp:
        return settings.amqp_consumer_timeout_s
    return settings.visibility_timeout_s


def max_job_deadline_s(settings: CoreSettings) -> float:
    """The longest ``deadline_s`` a producer may submit on this stack.

    A redelivered message (delivery_timeout_s) must find the job finished, or its lease expired
    (its worker died), never a live run: so a run (deadline) plus the lease of a worker that
    died at its end plus the margin must fit inside the delivery timeout.
    """
    return delivery_timeout_s(settings) - settings.lease_s - VISIBILITY_MARGIN_S


def reschedule_countdown_s(settings: CoreSettings, wait_s: float) -> float:
    """The countdown of a job rescheduled to wait ``wait_s`` for a route.

    On Redis a worker holds an ETA message unacknowledged until its countdown ends; near the
    visibility timeout, Redis would hand it to a second worker meanwhile. A wait longer than a
    quarter of the timeout is taken in steps: the job runs, finds every route still away, and
    waits again. On RabbitMQ the wait is spent in the broker (Celery's native delayed delivery
    for quorum queues), not in a worker, and the same steps keep it well inside consumer_timeout
    should a worker hold one anyway.
    """
    return max(0.0, min(wait_s, delivery_timeout_s(settings) / 4))


def queue_name(settings: CoreSettings, queue: str) -> str:
    """The broker's name of ``queue`` (Keys.queue, Keys.control_queue).

    On Redis kombu's ``global_keyprefix`` puts the namespace in front of every key already. A
    RabbitMQ vhost is shared by every namespace on it, so there the namespace is in the name.
    """
    if settings.broker_is_amqp:
        return f"{settings.namespace}.{queue}"
    return queue


def celery_config(settings: CoreSettings) -> dict[str, Any]:
    config = _common_config(settings)
    config.update(_amqp_config(settings) if settings.broker_is_amqp else _redis_config(settings))
    return config


def _amqp_config(settings: CoreSettings) -> dict[str, Any]:
    """RabbitMQ as the broker (TURNOUT_BROKER_URL=amqp://...), Redis for everything else.

    * quorum queues (replicated, durable, at-least-once): Celery sees ``x-queue-type`` on the
      declared queues (``worker_detect_quorum_queues``) and turns global QoS off, which quorum
      queues refuse; prefetch stays per consumer: multiplier 1 x concurrency, as on Redis;
    * publisher confirms (``confirm_publish``, PRODUCER_TRANSPORT_OPTIONS) on the producers'
      connections: a send returns once RabbitMQ has the message, so a producer that saw no
      error knows the job's message is safe, as with Redis's LPUSH. A worker's own sends (a
      reschedule, the reconciler's re-sends) go unconfirmed: its connections are shared by its
      threads, and a confirm is read back on the connection it went out on. One lost in a
      RabbitMQ crash leaves its job queued or leased, which the reconciler sends again;
    * topic exchanges: Celery's native delayed delivery (a reschedule's countdown spent in
      RabbitMQ's delay queues, not held by a worker) only routes through topic exchanges;
    * no visibility timeout: RabbitMQ gives a message back the moment its consumer's connection
      closes (a SIGKILLed worker's, at once), and holds it otherwise for as long as the consumer
      lives, up to ``consumer_timeout`` (delivery_timeout_s bounds the deadlines for it).
    """
    jobs, control = (queue_name(settings, q) for q in _queues(settings))
    return {
        "broker_url": settings.broker_url,
        # py-amqp with its writes locked: the pool's threads ack on the consumer's connection.
        "broker_transport": AMQP_TRANSPORT,
        # Confirms are asked for on producers' connections (producers.publisher), not here:
        # a confirm is read back on the connection it was sent on, and a worker's connections
        # are shared by its threads (routing.amqp_transport).
        "broker_transport_options": {},
        "task_default_queue": jobs,
        "task_default_exchange_type": "topic",
        "task_default_queue_type": "quorum",
        "task_queues": [_quorum_queue(jobs), _quorum_queue(control)],
        "task_routes": {
            HEALTH_CHECK_TASK: {"queue": control},
            RECONCILE_TASK: {"queue": control},
        },
    }


def _redis_config(settings: CoreSettings) -> dict[str, Any]:
    """Redis as the broker too (the default): turnout's own transport, routing.broker."""
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
        # Every queue of the fleet, for routing.broker's reclaim of a dead consumer's lists.
        "fleet_queues": worker_queues(keys, settings),
    }
    return {
        "broker_url": settings.broker_url,
        "broker_transport": "routing.broker:Transport",
        "broker_transport_options": broker_options,
        "visibility_timeout": visibility,
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
    }


def _queues(settings: CoreSettings) -> tuple[str, str]:
    keys = Keys(settings.namespace)
    return keys.queue, keys.control_queue


def _common_config(settings: CoreSettings) -> dict[str, Any]:
    """What holds on either broker: acks, prefetch, serialization, the pool, beat."""
    return {
        # No result backend: every task ignores its result (the job record holds outcomes), and
        # a Redis backend would still be built in each pool thread and called on every task.
        "broker_connection_retry_on_startup": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        # None, with no backend: else beat would schedule Celery's daily backend_cleanup task.
        "result_expires": None,
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


def _quorum_queue(name: str) -> Queue:
    """A durable quorum queue behind a topic exchange of the same name (see _amqp_config)."""
    return Queue(  # type: ignore[no-untyped-call]
        name,
        Exchange(name, type="topic", durable=True),  # type: ignore[no-untyped-call]
        routing_key=name,
        durable=True,
        queue_arguments={"x-queue-type": "quorum"},
    )


def create_app(settings: CoreSettings | None = None, *, include: Sequence[str] = ()) -> Celery:
    """A Celery app on ``settings``. A producer's app names no task module: it sends tasks by
    name (``RUN_JOB_TASK``); the worker's own app (workers.app) includes its tasks."""
    app = Celery("turnout", include=list(include))
    app.conf.update(celery_config(settings or CoreSettings()))
    return app
