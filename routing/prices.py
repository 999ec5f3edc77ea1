"""List prices and context windows of the seed providers' common models.

Routing uses them to estimate a job's cost and to skip a target whose context window cannot hold
the prompt. They are list prices from ``data/models.json`` (see its ``_source`` and ``as_of``):
good enough to choose between targets and to enforce a budget, never a bill.

Lookup by ``(provider, model)``, case-insensitive:

1. the exact model id;
2. else the longest known id that is a prefix of it, provided a dated or tagged variant
   continues from there (``-`` or ``@``), so ``gpt-4o-mini-2024-07-18`` is ``gpt-4o-mini`` and
   ``claude-sonnet-4-5-20250929`` is ``claude-sonnet-4-5``. A ``.`` or ``:`` does not count:
   ``gpt-5.1`` is a different model from ``gpt-5``, and OpenRouter's ``:free`` is a different
   price. When the longest prefix is not followed by one, a shorter one is not tried:
   ``openai/gpt-4o-mini:free`` is not priced as ``openai/gpt-4o``;
3. else the same for the provider whose models it serves: ``azure`` -> ``openai``,
   ``vertex`` -> ``gemini``.

Three spellings are normalised first: Bedrock's cross-region inference profiles
(``us.anthropic.claude-...``, priced here as the plain model), Gemini's ``models/`` prefix and
the Hugging Face router's ``:provider`` suffix.
An unknown model is ``None``: callers treat its cost and context window as unknown rather than
guessed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

_FALLBACK_PROVIDER = {"azure": "openai", "vertex": "gemini"}
_BEDROCK_REGION_PREFIXES = ("us.", "us-gov.", "eu.", "apac.", "jp.", "au.", "ca.", "global.")
_VARIANT_SEPARATORS = ("-", "@")


@dataclass(frozen=True)
class ModelInfo:
    input_cost_per_mtok: float | None
    output_cost_per_mtok: float | None
    context_window: int | None


def model_info(provider: str, model: str) -> ModelInfo | None:
    """The model's list prices (USD per million tokens) and context window, or ``None`` when
    the table does not know it."""
    provider = provider.lower()
    model = normalised_model(provider, model.lower())
    tables = _tables()
    for name in (provider, _FALLBACK_PROVIDER.get(provider)):
        if name is not None and name in tables:
            info = _lookup(tables[name], model)
            if info is not None:
                return info
    return None


def normalised_model(provider: str, model: str) -> str:
    """The id as the table spells it: Bedrock's region prefix and Gemini's ``models/`` gone."""
    if provider == "bedrock" and model.startswith(_BEDROCK_REGION_PREFIXES):
        return model.split(".", 1)[1]
    if provider in ("gemini", "vertex"):
        return model.removeprefix("models/")
    if provider == "huggingface":  # the router's ":provider" (or ":fastest") picks who serves it
        return model.split(":", 1)[0]
    return model


def _lookup(table: dict[str, ModelInfo], model: str) -> ModelInfo | None:
    if model in table:
        return table[model]
    # The longest prefix decides alone: when "openai/gpt-4o-mini:free" is not a variant of
    # "openai/gpt-4o-mini", it is not one of "openai/gpt-4o" either.
    longest = max((known for known in table if model.startswith(known)), key=len, default=None)
    if longest is None or model[len(longest)] not in _VARIANT_SEPARATORS:
        return None
    return table[longest]


@cache
def _tables() -> dict[str, dict[str, ModelInfo]]:
    """provider -> lower-cased model id -> info, read once from the packaged JSON."""
    text = files("routing").joinpath("data/models.json").read_text(encoding="utf-8")
    providers: dict[str, dict[str, dict[str, object]]] = json.loads(text)["providers"]
    return {
        provider.lower(): {model.lower(): _parse(entry) for model, entry in models.items()}
        for provider, models in providers.items()
    }


def _parse(entry: dict[str, object]) -> ModelInfo:
    context = entry["context_window"]
    if not (context is None or (isinstance(context, int) and not isinstance(context, bool))):
        raise ValueError(f"context_window must be an integer or null: {entry}")
    return ModelInfo(
        input_cost_per_mtok=_price(entry, "input_cost_per_mtok"),
        output_cost_per_mtok=_price(entry, "output_cost_per_mtok"),
        context_window=context,
    )


def _price(entry: dict[str, object], field: str) -> float | None:
    value = entry[field]
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise ValueError(f"{field} must be a number or null: {entry}")
