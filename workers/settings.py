"""A worker's settings: the core ones (routing.settings) and every provider credential.

One field per setting, named as its owner names it: provider variables keep the providers' own
names (OPENAI_API_KEY, GROQ_API_KEY, ...); turnout's own knobs are TURNOUT_*. API keys are
``SecretStr``: their repr is masked, and they are only unwrapped at the moment a request header
is built.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from pydantic import AliasChoices, Field, PrivateAttr, SecretStr

from routing.settings import CoreSettings, env_file


def _env(name: str, *aliases: str) -> Any:
    """A provider variable, read by its own name and then by each alias (the names other tools
    give it: ``AZURE_API_BASE`` is LiteLLM's ``AZURE_BASE_URL``); the first one set wins."""
    names = [form for env in (name, *aliases) for form in (env, env.lower())]
    return Field(default=None, validation_alias=AliasChoices(*names))


#: Variable -> the other tool that names it so: what ``turnout providers check`` says when a
#: value came from an alias.
ALIAS_OWNERS: dict[str, str] = {
    "OPENAI_API_BASE": "Letta's and LiteLLM's name",
    "AZURE_API_BASE": "LiteLLM's name",
    "GOOGLE_API_KEY": "google-genai's and LiteLLM's name",
    "AWS_REGION_NAME": "LiteLLM's name",
}


class WorkerSettings(CoreSettings):
    """A worker's (and beat's) settings: the core ones, the provider credentials, alerts.

    Only worker-side code builds this class; producers build ``CoreSettings`` or
    ``producers.settings.ProducerSettings``, which have no credential fields.
    """

    #: Seconds after a monitor's last ask (Flower asks every 5 s) before a worker started with
    #: task events off stops sending them again (workers.event_switch).
    task_events_idle_s: float = Field(
        default=60.0, gt=0, validation_alias="TURNOUT_TASK_EVENTS_IDLE_S"
    )

    # --- alerts -----------------------------------------------------------------------------
    #: Where breaker transitions are POSTed as JSON with a ``text`` field (a Slack incoming
    #: webhook, or anything that takes one); unset, they are only logged. A secret: a Slack
    #: webhook URL carries its token.
    alert_webhook: SecretStr | None = Field(default=None, validation_alias="TURNOUT_ALERT_WEBHOOK")

    # --- worker -----------------------------------------------------------------------------
    connect_timeout_s: float = Field(default=5.0, gt=0, validation_alias="TURNOUT_CONNECT_TIMEOUT")
    #: MiB of reply bodies this worker process may hold at once, across all its threads
    #: (workers.reply_budget): a call whose reply would go past it fails as ``overloaded``,
    #: is retried after a backoff and moves no breaker, and the process does not grow. At
    #: least 64: one body of the 32 MiB a call may receive is briefly held twice.
    reply_budget_mb: int = Field(default=256, ge=64, validation_alias="TURNOUT_REPLY_BUDGET_MB")
    #: Refuse to start (exit 78) when any deployment's key is unset. Off, the worker starts,
    #: logs each unset variable and passes those routes over (workers.credentials).
    strict_config: bool = Field(default=False, validation_alias="TURNOUT_STRICT_CONFIG")
    #: How long the fleet remembers that a model refused a parameter (workers.parameter_lessons):
    #: a day, so a model that starts accepting it again gets it back by tomorrow.
    parameter_lesson_ttl_s: int = Field(
        default=86_400, ge=1, validation_alias="TURNOUT_PARAMETER_LESSON_TTL"
    )

    # --- the encrypted key store (workers.key_crypto) ------------------------------------------
    #: The master key (32 random bytes, base64) that seals and opens the key store's values;
    #: or a file holding it. Unset: store-backed routes are out of rotation, and say why.
    encryption_key: SecretStr | None = Field(
        default=None, validation_alias="TURNOUT_ENCRYPTION_KEY"
    )
    encryption_key_file: Path | None = Field(
        default=None, validation_alias="TURNOUT_ENCRYPTION_KEY_FILE"
    )
    #: The master key being replaced: it still opens what it sealed until ``turnout keys
    #: reencrypt`` has sealed everything under the new one.
    encryption_key_previous: SecretStr | None = Field(
        default=None, validation_alias="TURNOUT_ENCRYPTION_KEY_PREVIOUS"
    )
    encryption_key_previous_file: Path | None = Field(
        default=None, validation_alias="TURNOUT_ENCRYPTION_KEY_PREVIOUS_FILE"
    )

    # --- providers (names as each provider's docs and SDK use them) ---------------------------
    # OpenAI and the servers that speak its protocol
    openai_api_key: SecretStr | None = _env("OPENAI_API_KEY")
    openai_base_url: str | None = _env("OPENAI_BASE_URL", "OPENAI_API_BASE")
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
    # Azure OpenAI: the v1 API by default (/openai/v1/, no api-version; every model, the
    # reasoning ones included); a dated AZURE_API_VERSION selects the classic surface instead
    azure_api_key: SecretStr | None = _env("AZURE_API_KEY")
    azure_base_url: str | None = _env("AZURE_BASE_URL", "AZURE_API_BASE")
    azure_api_version: str = Field(
        default="v1",
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
    #: GOOGLE_API_KEY first, as google-genai reads them: with both set, it wins there too.
    gemini_api_key: SecretStr | None = _env("GOOGLE_API_KEY", "GEMINI_API_KEY")
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
    #: What the AWS SDKs other than botocore (and LiteLLM, as AWS_REGION_NAME) read first.
    aws_region: str | None = _env("AWS_REGION", "AWS_REGION_NAME")
    #: A profile of the shared config files (~/.aws/config): keys, SSO, AssumeRole, a
    #: credential_process, and its region. Read from .env too, which botocore would not.
    aws_profile: str | None = _env("AWS_PROFILE")
    #: A Bedrock API key: sent as ``Authorization: Bearer`` instead of a SigV4 signature, as
    #: botocore does when it is set.
    aws_bearer_token_bedrock: SecretStr | None = _env("AWS_BEARER_TOKEN_BEDROCK")
    aws_endpoint_url_bedrock_runtime: str | None = _env("AWS_ENDPOINT_URL_BEDROCK_RUNTIME")
    aws_endpoint_url_bedrock: str | None = _env("AWS_ENDPOINT_URL_BEDROCK")
    #: When set (e.g. bedrock-2023-05-31), Anthropic models on Bedrock are called through
    #: InvokeModel with this anthropic_version instead of Converse.
    bedrock_anthropic_version: str | None = _env("BEDROCK_ANTHROPIC_VERSION")
    # Cohere
    cohere_api_key: SecretStr | None = _env("COHERE_API_KEY")
    cohere_base_url: str | None = _env("COHERE_BASE_URL")
    # Hugging Face: Inference Providers (the router) and TGI / Inference Endpoints. HF_TOKEN as
    # huggingface_hub reads it (HUGGING_FACE_HUB_TOKEN is its older name); HF_ENDPOINT is the
    # Hub, which answers the token probe.
    hf_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("HF_TOKEN", "hf_token", "HUGGING_FACE_HUB_TOKEN"),
    )
    hf_endpoint: str | None = _env("HF_ENDPOINT")
    tgi_base_url: str | None = _env("TGI_BASE_URL")
    # AI21 Studio (Jamba): the ai21 SDK's variables; AI21_API_HOST is the base URL with
    # /studio/v1, AI21_NUM_RETRIES its retries [0].
    ai21_api_key: SecretStr | None = _env("AI21_API_KEY")
    ai21_api_host: str | None = _env("AI21_API_HOST")
    ai21_num_retries: int = Field(
        default=0,
        ge=0,
        le=10,
        validation_alias=AliasChoices("AI21_NUM_RETRIES", "ai21_num_retries"),
    )
    # Replicate: the replicate SDK's variables (token, base URL, seconds between polls).
    replicate_api_token: SecretStr | None = _env("REPLICATE_API_TOKEN")
    replicate_base_url: str | None = _env("REPLICATE_BASE_URL")
    replicate_poll_interval: float = Field(
        default=0.5,
        gt=0,
        le=30,
        validation_alias=AliasChoices("REPLICATE_POLL_INTERVAL", "replicate_poll_interval"),
    )
    # Text Generation WebUI (oobabooga): its API's URL and its --api-key, if it was given one.
    oobabooga_api_base: str | None = _env("OOBABOOGA_API_BASE")
    oobabooga_api_key: SecretStr | None = _env("OOBABOOGA_API_KEY")

    #: Values that stand in for variables (``with_value``): a key store's key for its adapter.
    _given: dict[str, str] = PrivateAttr(default_factory=dict)

    def with_value(self, env_name: str, value: str) -> WorkerSettings:
        """These settings with ``value_of(env_name)`` answering ``value``: how an adapter is
        built on a key from the key store (``store:NAME``), which no variable holds."""
        copy = self.model_copy()
        copy._given = {**self._given, env_name: value}
        return copy

    @cached_property
    def _dotenv(self) -> dict[str, str | None]:
        path = env_file()
        return dotenv_values(path) if Path(path).is_file() else {}

    def value_of(self, env_name: str) -> str | None:
        """The value of a provider variable, by the name a config file uses for it.

        Known variables come from their field; any other name (a second key for one provider,
        say ``OPENAI_API_KEY_2``) is read from the environment, then ``.env``.
        """
        if env_name in self._given:
            return self._given[env_name]
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

    def source_of(self, env_name: str) -> str | None:
        """The variable that really holds ``env_name``'s value: itself, or the alias it was
        read from (``AZURE_API_BASE`` for ``AZURE_BASE_URL``); None when unset. The
        environment is read before ``.env`` and, within each, the names in field order, as
        pydantic-settings reads them."""
        field_name = _FIELD_BY_ENV.get(env_name.upper())
        if field_name is None:
            return env_name if self.is_set(env_name) else None
        if getattr(self, field_name) is None:
            return None
        names = _ENVS_BY_FIELD[field_name]
        environ = {k.upper(): v for k, v in os.environ.items()}
        dotenv = {k.upper(): v for k, v in self._dotenv.items()}
        for source in (environ, dotenv):
            for name in names:
                value = source.get(name)
                if value is not None and value.strip():
                    return name
        return env_name  # set some other way (passed to the constructor)


def _env_names(alias: object) -> list[str]:
    choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
    names = [str(choice).upper() for choice in choices if isinstance(choice, str)]
    return list(dict.fromkeys(names))


#: Variable name -> the Settings field that reads it.
_FIELD_BY_ENV: dict[str, str] = {
    env: name
    for name, info in WorkerSettings.model_fields.items()
    for env in _env_names(info.validation_alias)
}

#: Settings field -> the variables it reads, in the order it reads them.
_ENVS_BY_FIELD: dict[str, list[str]] = {
    name: _env_names(info.validation_alias) for name, info in WorkerSettings.model_fields.items()
}
