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
    )

    def __init__(self, **values: Any) -> None:
        values.setdefault("_env_file", env_file())
        super().__init__(**values)

    # --- where things are -------------------------------------------------------------------
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", validation_alias="REDIS_URL")
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
    #: 0.7 KB that nothing stores, five per job. Measured here (ops.bench): +1.2 ms submit to
    #: result (3.9 -> 5.1 ms median), +0.6 ms worker CPU per job, one worker's throughput at 400
    #: threads 292 -> 240 jobs/s. Off, a worker still sends its own when started with -E or
    #: while a Flower runs (Flower turns them on every 5 s): the cost is paid while watched.
    task_events: bool = Field(default=True, validation_alias="TURNOUT_TASK_EVENTS")

    @field_validator("*", mode="before")
    @classmethod
    def _trimmed_blank_is_unset(cls, value: object) -> object:
        """``TURNOUT_NAMESPACE=`` means "not set", not "the empty value"; and a value read from
        a file (a Kubernetes secret) loses its trailing newline, which no header may carry."""
        if isinstance(value, str):
            return value.strip() or None
        return value
