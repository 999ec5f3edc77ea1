"""The providers turnout can reach: their wire protocol, default endpoint and variable names.

Variable names are the providers' own (OPENAI_API_KEY, GROQ_API_KEY, ...), so an environment
that already works with a provider's SDK works with turnout. See ../shared/providers.md §0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Protocol = Literal["openai"]


@dataclass(frozen=True)
class ProviderSpec:
    name: str
    protocol: Protocol
    default_base_url: str
    #: Variable holding the API key; ``None`` when the provider takes no key at all.
    key_env: str | None
    #: A local server (Ollama, vLLM, LM Studio) works without a key; a cloud API does not.
    key_required: bool
    #: Variable overriding the base URL (a deployment's ``base_url`` overrides both).
    base_url_env: str | None = None
    #: Appended to the variable's value when missing (OLLAMA_BASE_URL names the server root).
    base_url_env_suffix: str = ""
    #: OpenAI deprecated ``max_tokens`` for ``max_completion_tokens``; compatible servers
    #: mostly still speak the old name.
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    #: Optional headers filled from variables: header name -> variable name.
    header_envs: dict[str, str] = field(default_factory=dict)


PROVIDERS: dict[str, ProviderSpec] = {
    spec.name: spec
    for spec in (
        ProviderSpec(
            "openai",
            "openai",
            "https://api.openai.com/v1",
            "OPENAI_API_KEY",
            key_required=True,
            base_url_env="OPENAI_BASE_URL",
            max_tokens_field="max_completion_tokens",
            header_envs={
                "OpenAI-Organization": "OPENAI_ORGANIZATION",
                "OpenAI-Project": "OPENAI_PROJECT",
            },
        ),
        ProviderSpec(
            "groq", "openai", "https://api.groq.com/openai/v1", "GROQ_API_KEY", key_required=True
        ),
        ProviderSpec(
            "together",
            "openai",
            "https://api.together.xyz/v1",
            "TOGETHER_API_KEY",
            key_required=True,
        ),
        ProviderSpec(
            "deepseek",
            "openai",
            "https://api.deepseek.com",
            "DEEPSEEK_API_KEY",
            key_required=True,
        ),
        ProviderSpec("xai", "openai", "https://api.x.ai/v1", "XAI_API_KEY", key_required=True),
        ProviderSpec(
            "openrouter",
            "openai",
            "https://openrouter.ai/api/v1",
            "OPENROUTER_API_KEY",
            key_required=True,
            header_envs={
                "HTTP-Referer": "OPENROUTER_REFERER",
                "X-Title": "OPENROUTER_TITLE",
                "X-OpenRouter-Title": "OPENROUTER_TITLE",
            },
        ),
        ProviderSpec(
            "mistral",
            "openai",
            "https://api.mistral.ai/v1",
            "MISTRAL_API_KEY",
            key_required=True,
        ),
        ProviderSpec(
            "ollama",
            "openai",
            "http://localhost:11434/v1",
            "OLLAMA_API_KEY",
            key_required=False,
            base_url_env="OLLAMA_BASE_URL",
            base_url_env_suffix="/v1",
        ),
        ProviderSpec(
            "vllm",
            "openai",
            "http://localhost:8000/v1",
            "VLLM_API_KEY",
            key_required=False,
            base_url_env="VLLM_API_BASE",
        ),
        ProviderSpec(
            "lmstudio",
            "openai",
            "http://localhost:1234/v1",
            "LM_API_TOKEN",
            key_required=False,
            base_url_env="LMSTUDIO_BASE_URL",
        ),
    )
}


def resolve_base_url(spec: ProviderSpec, configured: str | None, env_value: str | None) -> str:
    """A deployment's ``base_url`` wins, then the provider's variable, then its default."""
    if configured:
        return configured.rstrip("/")
    if env_value:
        base = env_value.rstrip("/")
        if spec.base_url_env_suffix and not base.endswith(spec.base_url_env_suffix):
            base += spec.base_url_env_suffix
        return base
    return spec.default_base_url
