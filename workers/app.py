"""The Celery app of workers, beat and Flower: ``celery -A workers.app worker|beat|flower``.

Producers do not import this module (nor anything in workers/: an import-linter contract says
so): they build their own app with ``routing.celery_config.create_app`` and send
``turnout.run_job`` by name, so they never load the tasks, the provider adapters or any
credential.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from celery import signals

from routing.celery_config import celery_config, create_app
from routing.settings import CoreSettings
from workers.settings import WorkerSettings

_settings = WorkerSettings()
app = create_app(_settings, include=["workers.tasks", "workers.presence"])
if not _settings.task_events:
    # Task events only while a monitor asks for them (workers.event_switch).
    from workers.event_switch import EventsOnDemand

    app.conf.turnout_task_events_idle_s = _settings.task_events_idle_s
    app.steps["consumer"].add(EventsOnDemand)


class _SettledNotice(logging.Filter):
    """Drops Celery's notice that ``worker_cancel_long_running_tasks_on_connection_loss`` will
    default to on in Celery 6, which it logs (eight lines, as a warning) on every broker
    connection loss while the setting is off, even when set off on purpose, as here
    (routing.celery_config says why): so a blip logs the one line that says it happened."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "worker_cancel_long_running_tasks_on_connection_loss" not in record.getMessage()


# Celery turns warnings into log records of this logger (logging.captureWarnings).
logging.getLogger("py.warnings").addFilter(_SettledNotice())


def reconfigure(settings: CoreSettings, **overrides: Any) -> dict[str, Any]:
    """Point this process's worker app at ``settings`` (another Redis or namespace): for a
    worker run inside another process, on a stack of its own (``ops.testing``). Returns the
    values it replaced: ``restore`` puts them back.

    The broker pools the app built for the settings it had are dropped, so its next
    connection (the consumer's, a retry's publish) is made for the new ones."""
    changes = {**celery_config(settings), **overrides}
    previous = {name: app.conf.get(name) for name in changes}
    _apply(changes)
    return previous


def restore(previous: dict[str, Any]) -> None:
    """Undo ``reconfigure``: the app as it was, for whoever uses it next in this process."""
    _apply(previous)


def _apply(changes: dict[str, Any]) -> None:
    app.conf.update(changes)
    app.close()  # forgets the broker connection pool
    app.amqp._producer_pool = None  # and the producer pool over it (as Celery does after fork)


#: sysexits.h EX_CONFIG: what a supervisor should read as "fix the configuration".
EXIT_CONFIG = 78


@signals.worker_init.connect
def _check_config_before_consuming(**_: Any) -> None:
    """Refuse to start with a broken config (or, ``TURNOUT_STRICT_CONFIG=1``, a missing key),
    before taking any message; otherwise say loudly which routes a missing variable takes out
    of rotation, and record them for ``turnout status`` (workers.credentials).

    Celery's signal dispatch logs and swallows a receiver's exceptions, so the problem is
    printed here and the worker leaves with SystemExit, which it does not swallow.
    """
    import redis

    from routing.errors import ConfigError
    from routing.jobstore import redis_client
    from routing.keys import Keys
    from routing.planning import unusable_routes
    from workers.credentials import describe_unusable, record_unusable
    from workers.key_crypto import KeyStoreError
    from workers.key_routes import store_route_problems
    from workers.runtime import load_worker_config

    settings = WorkerSettings()
    try:
        config = load_worker_config(settings)
    except ConfigError as exc:
        sys.stderr.write(f"turnout worker: cannot start: {exc}\n")
        raise SystemExit(EXIT_CONFIG) from None
    unusable = unusable_routes(config, settings.is_set)
    try:
        unusable.update(
            store_route_problems(settings, config, lambda: redis_client(settings.redis_url))
        )
    except KeyStoreError as exc:
        sys.stderr.write(f"turnout worker: cannot start: {exc}\n")
        raise SystemExit(EXIT_CONFIG) from None
    except redis.RedisError as exc:
        sys.stderr.write(f"turnout worker: the key store could not be read: {exc}\n")
    for line in describe_unusable(config, unusable):
        sys.stderr.write(f"turnout worker: WARNING: {line}\n")
    try:
        client = redis_client(settings.breaker_redis_url or settings.redis_url)
        try:
            record_unusable(client, Keys(settings.namespace).route_prefix, config, unusable)
        finally:
            client.close()
    except redis.RedisError as exc:
        sys.stderr.write(f"turnout worker: unusable routes not recorded in Redis: {exc}\n")


@signals.after_setup_logger.connect
def _redact_logs(logger: logging.Logger, **_: Any) -> None:
    from workers.log_setup import configure_worker_logging

    configure_worker_logging(logger)


@signals.worker_process_init.connect
def _fresh_runtime_in_child(**_: Any) -> None:
    from workers.runtime import reset_runtime

    reset_runtime()


@signals.worker_shutdown.connect
def _close_runtime(**_: Any) -> None:
    from workers import runtime

    if runtime._runtime is not None:
        runtime._runtime.close()


@signals.beat_init.connect
def _beat_sends_no_sent_events(sender: Any = None, **_: Any) -> None:
    """Beat sends only the control tasks, which send no task events (workers.tasks): nor does
    beat announce them, or each tick would still add a PENDING task to Flower's list."""
    app_of_beat = getattr(sender, "app", None) or app
    app_of_beat.conf.task_send_sent_event = False
