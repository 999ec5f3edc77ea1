"""LiteLLM-style model names (``anthropic/claude-sonnet-4-5``) read as a deployment's provider
and model, so a config copied from a LiteLLM setup works without rewriting every entry.

The shorthand is read only where it cannot be a real model id:

* with no ``provider:``, a prefix that names a provider (ours, or LiteLLM's spelling of one:
  ``vertex_ai``, ``together_ai``, ...) is the provider, and the rest the model;
* with a ``provider:`` whose model ids never contain a ``/`` (OpenAI, Anthropic, Bedrock, ...),
  a prefix that names the same provider is dropped, and one that names another provider is a
  contradiction the config must fix;
* with any other ``provider:`` the model is left alone: OpenRouter (``anthropic/claude-3.5``,
  ``openrouter/auto``), Groq and Hugging Face (``openai/gpt-oss-120b``), Together and vLLM
  (``meta-llama/...``) name real models that way.

Pure functions over the raw config data: ``routing.config`` applies them before validation.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

#: LiteLLM's provider prefixes that are spelt differently from ours.
LITELLM_PREFIXES: dict[str, str] = {
    "vertex_ai": "vertex",
    "vertex_ai_beta": "vertex",
    "together_ai": "together",
    "ollama_chat": "ollama",
    "hosted_vllm": "vllm",
    "lm_studio": "lmstudio",
    "cohere_chat": "cohere",
}

#: Providers whose model ids never hold a vendor prefix, so a prefix there is the shorthand.
#: Providers not listed (aggregators, self-hosted servers, any added later) keep ids as given.
BARE_ID_PROVIDERS: frozenset[str] = frozenset(
    {
        "openai",
        "azure",
        "anthropic",
        "gemini",
        "vertex",
        "bedrock",
        "cohere",
        "mistral",
        "deepseek",
        "xai",
    }
)


@dataclass(frozen=True)
class Shorthand:
    """What a deployment's ``model`` says: the provider its prefix names (None: no shorthand)
    and the model id without it."""

    provider: str | None
    model: str


def read_shorthand(model: str, known: Collection[str]) -> Shorthand:
    """``vertex_ai/gemini-2.5-pro`` -> (vertex, gemini-2.5-pro); a name without a known
    provider prefix (``meta-llama/llama-3.1-8b``, ``gpt-4o``) -> (None, as given)."""
    prefix, slash, rest = model.partition("/")
    if not slash or not rest:
        return Shorthand(None, model)
    provider = LITELLM_PREFIXES.get(prefix, prefix)
    if provider not in known:
        return Shorthand(None, model)
    return Shorthand(provider, rest)


def contradiction(provider: str, model: str, known: Collection[str]) -> str | None:
    """The provider a ``provider:``'s model prefix names instead, when the two disagree and the
    prefix cannot be part of a real id of that provider; None otherwise."""
    if provider not in BARE_ID_PROVIDERS:
        return None
    named = read_shorthand(model, known).provider
    return named if named is not None and named != provider else None


def expand_shorthand(entry: dict[str, object], known: Collection[str]) -> dict[str, object]:
    """A raw deployment entry with the shorthand read: ``provider`` filled in from the prefix
    when absent, a redundant prefix dropped where ids never hold one. Anything else (wrong
    types, contradictions: ``contradiction`` reports those) is returned unchanged."""
    model = entry.get("model")
    if not isinstance(model, str):
        return entry
    provider = entry.get("provider")
    shorthand = read_shorthand(model, known)
    if shorthand.provider is None:
        return entry
    if provider is None:
        return {**entry, "provider": shorthand.provider, "model": shorthand.model}
    if provider == shorthand.provider and provider in BARE_ID_PROVIDERS:
        return {**entry, "model": shorthand.model}
    return entry
