"""The providers turnout can reach: their wire protocol, default endpoint and variable names.

Variable names are the providers' own (OPENAI_API_KEY, ANTHROPIC_API_KEY, AWS_ACCESS_KEY_ID, ...),
so an environment that already works with a provider's SDK works with turnout. A provider is
enabled when every variable in ``required_envs`` is set. See ../shared/providers.md §0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Protocol = Literal[
    "openai",
    "azure",
    "anthropic",
    "gemini",
    "vertex",
    "bedrock",
    "cohere",
    "ollama",
    "huggingface",
    "ai21",
    "replicate",
]


@dataclass(frozen=True)
class ProviderSpec:
    name: str
    protocol: Protocol
    default_base_url: str
    #: Variable holding the API key; ``None`` when the provider authenticates otherwise
    #: (Vertex: OAuth2; Bedrock: SigV4).
    key_env: str | None
    #: Local servers (Ollama, vLLM, LM Studio) work without a key unless told to require one.
    key_optional: bool = False
    #: Variables needed besides the key for the provider to be enabled.
    also_required: tuple[str, ...] = ()
    #: Variable overriding the base URL (a deployment's ``base_url`` overrides both).
    base_url_env: str | None = None
    #: Appended to the variable's value when missing (OLLAMA_BASE_URL names the server root).
    base_url_env_suffix: str = ""
    #: OpenAI deprecated ``max_tokens`` for ``max_completion_tokens``; compatible servers
    #: mostly still speak the old name.
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    #: Optional headers filled from variables: header name -> variable name.
    header_envs: dict[str, str] = field(default_factory=dict)
    #: Other protocols a deployment may choose with ``protocol:`` (Ollama also speaks OpenAI's).
    alt_protocols: tuple[Protocol, ...] = ()
    #: Further variables the provider reads, listed by ``turnout providers``.
    optional_envs: tuple[str, ...] = ()

    @property
    def key_required(self) -> bool:
        return self.key_env is not None and not self.key_optional

    @property
    def required_envs(self) -> tuple[str, ...]:
        """Every variable that must be set for the provider to be enabled."""
        key = (self.key_env,) if self.key_env and self.key_required else ()
        return (*key, *self.also_required)

    @property
    def enable_envs(self) -> tuple[str, ...]:
        """What ``turnout providers`` needs set to call the provider enabled: its required
        variables, or for a local server its URL (that is how one says it runs one)."""
        if self.key_optional and self.base_url_env:
            return (self.base_url_env,)
        return self.required_envs

    @property
    def all_envs(self) -> tuple[str, ...]:
        names = list(self.required_envs)
        for name in (
            self.key_env,
            self.base_url_env,
            *self.header_envs.values(),
            *self.optional_envs,
        ):
            if name and name not in names:
                names.append(name)
        return tuple(names)


PROVIDERS: dict[str, ProviderSpec] = {
    spec.name: spec
    for spec in (
        ProviderSpec(
            "openai",
            "openai",
            "https://api.openai.com/v1",
            "OPENAI_API_KEY",
            base_url_env="OPENAI_BASE_URL",
            max_tokens_field="max_completion_tokens",
            header_envs={
                "OpenAI-Organization": "OPENAI_ORGANIZATION",
                "OpenAI-Project": "OPENAI_PROJECT",
            },
        ),
        ProviderSpec(
            "azure",
            "azure",
            "",
            "AZURE_API_KEY",
            also_required=("AZURE_BASE_URL",),
            # As OpenAI's (providers.md §0): reasoning deployments refuse max_tokens.
            max_tokens_field="max_completion_tokens",
            base_url_env="AZURE_BASE_URL",
            optional_envs=("AZURE_API_VERSION",),
        ),
        ProviderSpec(
            "anthropic",
            "anthropic",
            "https://api.anthropic.com",
            "ANTHROPIC_API_KEY",
            base_url_env="ANTHROPIC_BASE_URL",
            optional_envs=("ANTHROPIC_SONNET_1M", "ANTHROPIC_MAX_RETRIES"),
        ),
        ProviderSpec(
            "gemini",
            "gemini",
            "https://generativelanguage.googleapis.com/v1beta",
            "GEMINI_API_KEY",
            base_url_env="GEMINI_BASE_URL",
            optional_envs=("GEMINI_MAX_RETRIES", "GEMINI_FORCE_MINIMUM_THINKING_BUDGET"),
        ),
        ProviderSpec(
            "vertex",
            "vertex",
            "",
            None,
            # The location: a deployment's own, else GOOGLE_CLOUD_LOCATION, else "global".
            also_required=("GOOGLE_CLOUD_PROJECT",),
            base_url_env="VERTEX_BASE_URL",
            optional_envs=(
                "GOOGLE_CLOUD_LOCATION",
                "GOOGLE_APPLICATION_CREDENTIALS",
                "GEMINI_MAX_RETRIES",
            ),
        ),
        ProviderSpec(
            "bedrock",
            "bedrock",
            "",
            None,
            # No variable is required: botocore's credential chain (keys, AWS_PROFILE, SSO,
            # AssumeRole, container and instance credentials) or AWS_BEARER_TOKEN_BEDROCK, and
            # the region from the deployment, AWS_REGION, AWS_DEFAULT_REGION or the profile.
            base_url_env="AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
            optional_envs=(
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN",
                "AWS_PROFILE",
                "AWS_REGION",
                "AWS_DEFAULT_REGION",
                "AWS_BEARER_TOKEN_BEDROCK",
                "AWS_ENDPOINT_URL_BEDROCK",
                "BEDROCK_ANTHROPIC_VERSION",
            ),
        ),
        ProviderSpec("groq", "openai", "https://api.groq.com/openai/v1", "GROQ_API_KEY"),
        ProviderSpec("together", "openai", "https://api.together.xyz/v1", "TOGETHER_API_KEY"),
        ProviderSpec("deepseek", "openai", "https://api.deepseek.com", "DEEPSEEK_API_KEY"),
        ProviderSpec("xai", "openai", "https://api.x.ai/v1", "XAI_API_KEY"),
        ProviderSpec(
            "openrouter",
            "openai",
            "https://openrouter.ai/api/v1",
            "OPENROUTER_API_KEY",
            header_envs={
                "HTTP-Referer": "OPENROUTER_REFERER",
                "X-Title": "OPENROUTER_TITLE",
                "X-OpenRouter-Title": "OPENROUTER_TITLE",
            },
        ),
        ProviderSpec("mistral", "openai", "https://api.mistral.ai/v1", "MISTRAL_API_KEY"),
        ProviderSpec(
            "cohere",
            "cohere",
            "https://api.cohere.com",
            "COHERE_API_KEY",
            base_url_env="COHERE_BASE_URL",
        ),
        ProviderSpec(
            "ollama",
            "ollama",
            "http://localhost:11434",
            "OLLAMA_API_KEY",
            key_optional=True,
            base_url_env="OLLAMA_BASE_URL",
            alt_protocols=("openai",),
        ),
        ProviderSpec(
            "vllm",
            "openai",
            "http://localhost:8000/v1",
            "VLLM_API_KEY",
            key_optional=True,
            base_url_env="VLLM_API_BASE",
        ),
        ProviderSpec(
            "lmstudio",
            "openai",
            "http://localhost:1234/v1",
            "LM_API_TOKEN",
            key_optional=True,
            base_url_env="LMSTUDIO_BASE_URL",
        ),
        # Hugging Face Inference Providers: the router in front of every provider HF serves
        # (model ids like meta-llama/Llama-3.1-8B-Instruct, optionally :provider). HF_ENDPOINT
        # is the Hub that answers the token probe (huggingface_hub's own variable).
        ProviderSpec(
            "huggingface",
            "huggingface",
            "https://router.huggingface.co/v1",
            "HF_TOKEN",
            optional_envs=("HF_ENDPOINT",),
        ),
        # Text Generation Inference: a self-hosted TGI or a Hugging Face Inference Endpoint
        # (its Messages API under /v1); HF_TOKEN when the endpoint is protected.
        ProviderSpec(
            "tgi",
            "huggingface",
            "http://localhost:8080/v1",
            "HF_TOKEN",
            key_optional=True,
            base_url_env="TGI_BASE_URL",
            base_url_env_suffix="/v1",
        ),
        ProviderSpec(
            "ai21",
            "ai21",
            "https://api.ai21.com/studio/v1",
            "AI21_API_KEY",
            base_url_env="AI21_API_HOST",
            optional_envs=("AI21_NUM_RETRIES",),
        ),
        # Replicate's predictions API (not OpenAI's): create, wait, poll, cancel.
        ProviderSpec(
            "replicate",
            "replicate",
            "https://api.replicate.com",
            "REPLICATE_API_TOKEN",
            base_url_env="REPLICATE_BASE_URL",
            optional_envs=("REPLICATE_POLL_INTERVAL",),
        ),
        # Text Generation WebUI (oobabooga): its OpenAI-compatible API, a key when started
        # with --api-key.
        ProviderSpec(
            "oobabooga",
            "openai",
            "http://127.0.0.1:5000/v1",
            "OOBABOOGA_API_KEY",
            key_optional=True,
            base_url_env="OOBABOOGA_API_BASE",
            base_url_env_suffix="/v1",
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
