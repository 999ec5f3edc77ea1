"""Settings from the environment and ``.env``: one field per setting, named as its owner names it.

Provider variables keep the providers' own names (OPENAI_API_KEY, GROQ_API_KEY, ...); turnout's
own knobs are TURNOUT_*. API keys are ``SecretStr``: their repr is masked, and they are only
unwrapped at the moment a request header is built.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_FILE = ".env"


def _env(name: str) -> Any:
    return Field(default=None, validation_alias=AliasChoices(name, name.lower()))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=ENV_FILE, env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

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
    #: Runs of one job before it is failed as poison (each redelivery after a crash is a run).
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

    # --- alerts -----------------------------------------------------------------------------
    #: Where breaker transitions are POSTed as JSON with a ``text`` field (a Slack incoming
    #: webhook, or anything that takes one); unset, they are only logged. A secret: a Slack
    #: webhook URL carries its token.
    alert_webhook: SecretStr | None = Field(default=None, validation_alias="TURNOUT_ALERT_WEBHOOK")

    # --- worker -----------------------------------------------------------------------------
    worker_concurrency: int = Field(default=200, ge=1, validation_alias="TURNOUT_CONCURRENCY")
    connect_timeout_s: float = Field(default=5.0, gt=0, validation_alias="TURNOUT_CONNECT_TIMEOUT")
    #: Task events, what Flower shows: producers announce each job's message (task-sent), workers
    #: each state change and each provider call (task-calling). Each is a Redis PUBLISH of about
    #: 0.7 KB that nothing stores, five per job. Measured here (ops.bench): +1.2 ms submit to
    #: result (3.9 -> 5.1 ms median), +0.6 ms worker CPU per job, one worker's throughput at 400
    #: threads 292 -> 240 jobs/s. Off, a worker still sends its own when started with -E or
    #: while a Flower runs (Flower turns them on every 5 s): the cost is paid while watched.
    task_events: bool = Field(default=True, validation_alias="TURNOUT_TASK_EVENTS")

    # --- turnout serve ------------------------------------------------------------------------
    #: Bearer tokens callers of ``turnout serve`` send, comma-separated (several, so one can be
    #: rotated out while the next is already in use). Unset, serve refuses to start without
    #: ``--no-auth``. A secret: never logged, never echoed in an answer.
    api_tokens: SecretStr | None = Field(default=None, validation_alias="TURNOUT_API_TOKENS")
    #: How long ``POST /v1/chat/completions`` waits for its job; a job still running then is
    #: answered 504 with its id, and keeps running (``GET /v1/jobs/{id}`` has its result).
    serve_timeout_s: float = Field(
        default=60.0, gt=0, le=3600, validation_alias="TURNOUT_SERVE_TIMEOUT"
    )
    #: Largest request body serve reads, in bytes; a larger one is answered 413 unread. 8 MiB
    #: holds the longest request the producer accepts (4 million characters) in ASCII JSON.
    serve_max_body_bytes: int = Field(
        default=8 * 1024 * 1024, ge=1024, validation_alias="TURNOUT_SERVE_MAX_BODY"
    )

    # --- providers (names as each provider's docs and SDK use them) ---------------------------
    # OpenAI and the servers that speak its protocol
    openai_api_key: SecretStr | None = _env("OPENAI_API_KEY")
    openai_base_url: str | None = _env("OPENAI_BASE_URL")
    openai_organization: str | None = _env("OPENAI_ORGANIZATION")
    openai_project: str | None = _env("OPENAI_PROJECT")
    openrouter_api_key: SecretStr | None = _env("OPENROUTER_API_KEY")
    openrouter_referer: str | None = _env("OPENROUTER_REFERER")
    openrouter_title: str | None = _env("OPENROUTER_TITLE")
    groq_api_key: SecretStr | None = _env("GROQ_API_KEY")
    together_api_key: SecretStr | None = _env("TOGETHER_API_KEY")
    deepseek_api_key: SecretStr | None = _env("DEEPSEEK_API_KEY")
    xai_api_key: SecretStr | None = _env("XAI_API_KEY")
    mistral_api_key: SecretStr | None = _env("MISTRAL_API_KEY")
    ollama_base_url: str | None = _env("OLLAMA_BASE_URL")
    ollama_api_key: SecretStr | None = _env("OLLAMA_API_KEY")
    vllm_api_base: str | None = _env("VLLM_API_BASE")
    vllm_api_key: SecretStr | None = _env("VLLM_API_KEY")
    lmstudio_base_url: str | None = _env("LMSTUDIO_BASE_URL")
    lm_api_token: SecretStr | None = _env("LM_API_TOKEN")
    # Azure OpenAI: AZURE_API_VERSION "v1" selects the v1 API (no deployment in the path)
    azure_api_key: SecretStr | None = _env("AZURE_API_KEY")
    azure_base_url: str | None = _env("AZURE_BASE_URL")
    azure_api_version: str = Field(
        default="2024-10-21",
        validation_alias=AliasChoices("AZURE_API_VERSION", "azure_api_version"),
    )
    # Anthropic
    anthropic_api_key: SecretStr | None = _env("ANTHROPIC_API_KEY")
    anthropic_base_url: str | None = _env("ANTHROPIC_BASE_URL")
    #: Send the 1M-token context beta header (for Sonnet models that accept it).
    anthropic_sonnet_1m: bool = Field(
        default=False, validation_alias=AliasChoices("ANTHROPIC_SONNET_1M", "anthropic_sonnet_1m")
    )
    #: Retries on one Anthropic deployment when the policy names none (the SDK's own is 2).
    anthropic_max_retries: int = Field(
        default=3,
        ge=0,
        le=10,
        validation_alias=AliasChoices("ANTHROPIC_MAX_RETRIES", "anthropic_max_retries"),
    )
    # Gemini API (AI Studio)
    gemini_api_key: SecretStr | None = _env("GEMINI_API_KEY")
    gemini_base_url: str | None = _env("GEMINI_BASE_URL")
    #: Retries on one Gemini or Vertex deployment when the policy names none.
    gemini_max_retries: int = Field(
        default=5,
        ge=0,
        le=10,
        validation_alias=AliasChoices("GEMINI_MAX_RETRIES", "gemini_max_retries"),
    )
    #: Ask thinking models for the smallest thinking budget they allow.
    gemini_force_minimum_thinking_budget: bool = Field(
        default=False,
        validation_alias=AliasChoices(
            "GEMINI_FORCE_MINIMUM_THINKING_BUDGET", "gemini_force_minimum_thinking_budget"
        ),
    )
    # Vertex AI (OAuth2 through google-auth: a service-account file or application defaults)
    google_cloud_project: str | None = _env("GOOGLE_CLOUD_PROJECT")
    google_cloud_location: str | None = _env("GOOGLE_CLOUD_LOCATION")
    google_application_credentials: str | None = _env("GOOGLE_APPLICATION_CREDENTIALS")
    vertex_base_url: str | None = _env("VERTEX_BASE_URL")
    # AWS Bedrock (SigV4, service name "bedrock")
    aws_access_key_id: SecretStr | None = _env("AWS_ACCESS_KEY_ID")
    aws_secret_access_key: SecretStr | None = _env("AWS_SECRET_ACCESS_KEY")
    aws_session_token: SecretStr | None = _env("AWS_SESSION_TOKEN")
    aws_default_region: str | None = _env("AWS_DEFAULT_REGION")
    aws_endpoint_url_bedrock_runtime: str | None = _env("AWS_ENDPOINT_URL_BEDROCK_RUNTIME")
    aws_endpoint_url_bedrock: str | None = _env("AWS_ENDPOINT_URL_BEDROCK")
    #: When set (e.g. bedrock-2023-05-31), Anthropic models on Bedrock are called through
    #: InvokeModel with this anthropic_version instead of Converse.
    bedrock_anthropic_version: str | None = _env("BEDROCK_ANTHROPIC_VERSION")
    # Cohere
    cohere_api_key: SecretStr | None = _env("COHERE_API_KEY")
    cohere_base_url: str | None = _env("COHERE_BASE_URL")

    @field_validator("*", mode="before")
    @classmethod
    def _trimmed_blank_is_unset(cls, value: object) -> object:
        """``OPENAI_API_KEY=`` means "not set", not "the empty key"; and a value read from a
        file (a Kubernetes secret) loses its trailing newline, which no header may carry."""
        if isinstance(value, str):
            return value.strip() or None
        return value

    @cached_property
    def _dotenv(self) -> dict[str, str | None]:
        return dotenv_values(ENV_FILE) if Path(ENV_FILE).is_file() else {}

    def value_of(self, env_name: str) -> str | None:
        """The value of a provider variable, by the name a config file uses for it.

        Known variables come from their field; any other name (a second key for one provider,
        say ``OPENAI_API_KEY_2``) is read from the environment, then ``.env``.
        """
        field_name = _FIELD_BY_ENV.get(env_name.upper())
        if field_name is not None:
            value = getattr(self, field_name)
            if isinstance(value, SecretStr):
                return value.get_secret_value()
            return None if value is None else str(value)
        raw = os.environ.get(env_name)
        if raw is None:
            raw = self._dotenv.get(env_name)
        return raw.strip() if raw and raw.strip() else None

    def is_set(self, env_name: str) -> bool:
        return self.value_of(env_name) is not None


def _env_names(alias: object) -> list[str]:
    choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
    return [str(choice).upper() for choice in choices if isinstance(choice, str)]


#: Variable name -> the Settings field that reads it.
_FIELD_BY_ENV: dict[str, str] = {
    env: name
    for name, info in Settings.model_fields.items()
    for env in _env_names(info.validation_alias)
}
