"""The settings both sides share: where Redis is, the namespace, delivery timeouts.

Read from the environment and ``.env`` like every turnout setting (TURNOUT_*, REDIS_URL), but
holding no credential of any provider: a producer (``Client``, ``turnout batch``, ``turnout
serve``) builds its settings from this class and its own subclass, so a provider key in ``.env``
is never loaded into a producer process. Provider credentials are read on the worker side only
(``workers.settings.WorkerSettings``).

The file is ``.env`` in the working directory unless TURNOUT_ENV_FILE names another (``turnout
--env-file``): read when a settings object is built, not when this module is imported, and
inherited by every process a command starts, so a worker started by ``turnout up`` reads the
file its parent was told to.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_FILE = ".env"
#: Names the env file to read instead of ``.env`` (from the environment only, never a file).
ENV_FILE_VAR = "TURNOUT_ENV_FILE"


#: The broker URLs turnout knows: Redis (its own transport, routing.broker) or RabbitMQ.
AMQP_SCHEMES = ("amqp://", "amqps://", "pyamqp://")
BROKER_SCHEMES = ("redis://", "rediss://", "unix://", *AMQP_SCHEMES)


def is_amqp_url(url: str) -> bool:
    return url.startswith(AMQP_SCHEMES)


def env_file() -> str:
    """The env file settings read now: TURNOUT_ENV_FILE, else ``.env``."""
    return os.environ.get(ENV_FILE_VAR) or ENV_FILE


class CoreSettings(BaseSettings):
    """What every turnout process needs to find the queue and the job records."""

    # env_ignore_empty: ``TURNOUT_LEASE_S=`` is "not set" (its default), not an invalid
    # number; docker-compose.yml passes every core setting as ``${NAME:-}``, blank when unset.
    model_config = SettingsConfigDict(
        env_file=ENV_FILE,
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        env_ignore_empty=True,
        # A URL may carry a password (REDIS_URL, TURNOUT_BROKER_URL): an error names the
        # setting and what is wrong, never the value.
        hide_input_in_errors=True,
    )

    def __init__(self, **values: Any) -> None:
        values.setdefault("_env_file", env_file())
        super().__init__(**values)

    # --- where things are -------------------------------------------------------------------
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", validation_alias="REDIS_URL")
    #: Where Celery's messages go (default: REDIS_URL). ``amqp://`` puts them on RabbitMQ
    #: (quorum queues, publisher confirms); job records, leases, breakers and completion
    #: notifications stay in Redis either way (routing.celery_config, routing.broker_kind).
    broker_url_setting: str | None = Field(default=None, validation_alias="TURNOUT_BROKER_URL")
    config_path: Path | None = Field(default=None, validation_alias="TURNOUT_CONFIG")
    #: Prefix of every Redis key and queue, so several stacks (or test runs) share one Redis.
    namespace: str = Field(
        default="turnout", validation_alias="TURNOUT_NAMESPACE", pattern=r"^[A-Za-z0-9_.-]+$"
    )

    # --- delivery guarantees ----------------------------------------------------------------
    #: Seconds before Redis hands an unacknowledged message to another worker. Must exceed the
    #: longest job (lease + deadline); producers refuse deadlines that would not fit.
    visibility_timeout_s: int = Field(
        default=3600, ge=10, validation_alias="TURNOUT_VISIBILITY_TIMEOUT"
    )
    #: A running job's lease; its worker renews it every third of this. A dead worker's jobs
    #: become claimable again this long after it died.
    lease_s: float = Field(default=30.0, gt=0, validation_alias="TURNOUT_LEASE_S")
    #: Runs of one job a worker died in before it is failed as poison (a reschedule is none).
    max_runs: int = Field(default=5, ge=1, validation_alias="TURNOUT_MAX_RUNS")
    #: How long finished job records stay readable.
    job_ttl_s: int = Field(default=7 * 86_400, ge=60, validation_alias="TURNOUT_JOB_TTL")
    #: Beat runs the reconciler this often: it re-sends the messages of jobs that were lost on
    #: their way (a producer that died between storing a job and sending its message, a worker
    #: that died holding it).
    reconcile_every_s: float = Field(default=30.0, gt=0, validation_alias="TURNOUT_RECONCILE_EVERY")
    #: A job still queued this long is presumed to have lost its message and gets another one
    #: (in a backlog deeper than this, the extra message finds the job done and does nothing).
    requeue_after_s: float = Field(default=600.0, gt=0, validation_alias="TURNOUT_REQUEUE_AFTER")
    #: Beat sends a health_check task this often; each claims the routes whose check is due
    #: (their ``health.every_s``, fleet-wide), so this is the granularity of every interval:
    #: keep it at or below the shortest ``every_s`` in the config.
    health_tick_s: float = Field(default=5.0, gt=0, validation_alias="TURNOUT_HEALTH_TICK")
    #: kombu's sweep for unacknowledged messages past the visibility timeout: every
    #: interval x throttle seconds (kombu's defaults are 10 x 10).
    unacked_restore_interval_s: float = Field(
        default=10, gt=0, validation_alias="TURNOUT_RESTORE_INTERVAL"
    )
    unacked_restore_throttle: int = Field(
        default=6, ge=1, validation_alias="TURNOUT_RESTORE_THROTTLE"
    )

    #: How long a producer (``Client``, ``turnout serve``) rides out Redis being unreachable (a
    #: restart, a failover, a pause) before a submit, wait or read gives up with
    #: RedisUnavailable: retried with backoff meanwhile (producers.redis_patience). 0 never
    #: retries. ``turnout batch`` has its own, longer, ``--redis-patience``.
    redis_patience_s: float = Field(
        default=30.0, ge=0, le=86_400, validation_alias="TURNOUT_REDIS_PATIENCE_S"
    )

    #: RabbitMQ's ``consumer_timeout`` (its default 30 min): a message held unacknowledged
    #: longer closes its consumer's channel, and every job that channel held is redelivered.
    #: On an amqp broker it takes the visibility timeout's place in the longest deadline a
    #: producer accepts; set it to what the server is configured with.
    amqp_consumer_timeout_s: int = Field(
        default=1800, ge=60, validation_alias="TURNOUT_AMQP_CONSUMER_TIMEOUT"
    )

    # --- the fleet-wide breaker -----------------------------------------------------------------
    #: Where breakers and rate limits live (default: REDIS_URL). A separate instance keeps a
    #: broker incident from taking the fleet's breaker state with it.
    breaker_redis_url: str | None = Field(
        default=None, validation_alias="TURNOUT_BREAKER_REDIS_URL"
    )
    #: The breaker's Redis gets this long per operation; past it the worker falls back to its own
    #: per-process breaker (a breaker that hangs is worse than none).
    breaker_timeout_s: float = Field(
        default=0.25, gt=0, le=10, validation_alias="TURNOUT_BREAKER_TIMEOUT"
    )

    # --- priority lanes (routing.lanes) --------------------------------------------------------
    #: Off: every job, interactive or bulk, shares the one jobs queue (the old behaviour; the
    #: benchmark's baseline). Producers and workers of a fleet must agree on both settings.
    lanes: bool = Field(default=True, validation_alias="TURNOUT_LANES")
    #: Queues of the bulk lane: each batch takes one, and workers take them in turn.
    bulk_queues: int = Field(default=8, ge=1, le=64, validation_alias="TURNOUT_BULK_QUEUES")

    # --- the worker pool, as the queue sees it ---------------------------------------------
    #: Threads of one worker: the broker's connection pool is sized to them.
    worker_concurrency: int = Field(default=200, ge=1, validation_alias="TURNOUT_CONCURRENCY")
    #: Task events, what Flower shows: producers announce each job's message (task-sent), workers
    #: each state change and each provider call (task-calling). Each is a Redis PUBLISH of about
    #: 0.7 KB that nothing stores, five per job: about +1.5 ms submit to result and a tenth of a
    #: loaded worker's CPU, measured (ops.bench). Off by default: a worker still sends its own
    #: while a monitor asks for them (Flower does every 5 s) and stops a minute after the last
    #: ask (workers.event_switch, TURNOUT_TASK_EVENTS_IDLE_S), so the cost is paid while watched.
    #: On, producers send task-sent too and workers send every event, watched or not.
    task_events: bool = Field(default=False, validation_alias="TURNOUT_TASK_EVENTS")

    @property
    def broker_url(self) -> str:
        """Celery's broker: TURNOUT_BROKER_URL, else the Redis of the job records."""
        return self.broker_url_setting or self.redis_url

    @property
    def broker_is_amqp(self) -> bool:
        """The broker is RabbitMQ (``amqp://``, ``amqps://``, ``pyamqp://``)."""
        return is_amqp_url(self.broker_url)

    @field_validator("broker_url_setting")
    @classmethod
    def _known_broker(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(BROKER_SCHEMES):
            # The scheme only: the rest of the URL may hold a password.
            scheme = value.split("://", 1)[0] if "://" in value else "(none)"
            raise ValueError(
                f"TURNOUT_BROKER_URL must start with one of {', '.join(BROKER_SCHEMES)}; "
                f"its scheme is {scheme!r}"
            )
        return value

    @field_validator("*", mode="before")
    @classmethod
    def _trimmed_blank_is_unset(cls, value: object) -> object:
        """``TURNOUT_NAMESPACE=`` means "not set", not "the empty value"; and a value read from
        a file (a Kubernetes secret) loses its trailing newline, which no header may carry."""
        if isinstance(value, str):
            return value.strip() or None
        return value
