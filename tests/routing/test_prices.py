import json
from importlib.resources import files

import pytest

from routing.catalog import PROVIDERS
from routing.prices import ModelInfo, model_info

FIELDS = ("input_cost_per_mtok", "output_cost_per_mtok", "context_window")


def _table():
    return json.loads(files("routing").joinpath("data/models.json").read_text(encoding="utf-8"))


def test_the_table_says_where_its_prices_come_from_and_when():
    table = _table()
    assert table["_source"]
    assert table["as_of"]


def test_every_entry_is_well_formed():
    for provider, models in _table()["providers"].items():
        assert provider in PROVIDERS, provider
        assert models, provider
        for model, entry in models.items():
            where = f"{provider}/{model}"
            assert set(entry) <= {*FIELDS, "approximate", "dimensions"}, where
            dims = entry.get("dimensions")
            assert dims is None or (isinstance(dims, int) and dims > 0), where
            assert all(field in entry for field in FIELDS), where
            for field in FIELDS[:2]:
                price = entry[field]
                assert price is None or (isinstance(price, int | float) and price >= 0), where
            context = entry["context_window"]
            assert context is None or (isinstance(context, int) and context > 0), where
            assert isinstance(entry.get("approximate", False), bool), where


def test_model_ids_are_unique_ignoring_case():
    for models in _table()["providers"].values():
        assert len({model.lower() for model in models}) == len(models)


def test_every_entry_can_be_looked_up():
    for provider, models in _table()["providers"].items():
        for model, entry in models.items():
            assert model_info(provider, model) == ModelInfo(*(entry[f] for f in FIELDS))


def test_exact_match():
    assert model_info("openai", "gpt-4o-mini") == ModelInfo(0.15, 0.6, 128_000)
    assert model_info("groq", "llama-3.1-8b-instant") == ModelInfo(0.05, 0.08, 131_072)


@pytest.mark.parametrize(
    ("provider", "model", "known_as"),
    [
        ("openai", "gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("openai", "gpt-4o-2024-08-06", "gpt-4o"),
        ("openai", "o3-pro-2025-06-10", "o3-pro"),
        ("anthropic", "claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("anthropic", "claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("gemini", "gemini-2.5-flash-preview-05-20", "gemini-2.5-flash"),
        ("gemini", "gemini-2.5-flash-lite-001", "gemini-2.5-flash-lite"),
        ("cohere", "command-r-plus-08-2024", "command-r-plus"),
        ("mistral", "mistral-small-latest", "mistral-small"),
    ],
)
def test_longest_prefix_finds_dated_and_tagged_variants(provider, model, known_as):
    assert model_info(provider, model) == model_info(provider, known_as)


def test_prefix_match_stops_at_a_different_model():
    assert model_info("openai", "gpt-5.1") is None
    assert model_info("openai", "gpt-4o1") is None
    assert model_info("openrouter", "openai/gpt-4o-mini:free") is None
    assert model_info("openai", "gpt-4o-minix") is None  # not gpt-4o either
    # command-r7b is its own, cheaper model, not a variant of command-r.
    assert model_info("cohere", "command-r7b-12-2024") == model_info("cohere", "command-r7b")
    assert model_info("cohere", "command-r7b-12-2024") != model_info("cohere", "command-r")


def test_lookup_ignores_case():
    assert model_info("OpenAI", "GPT-4o-Mini") == model_info("openai", "gpt-4o-mini")
    assert model_info("together", "meta-llama/llama-3.3-70b-instruct-turbo") is not None


def test_azure_falls_back_to_openai():
    assert model_info("azure", "gpt-4o") == model_info("openai", "gpt-4o")
    assert model_info("azure", "gpt-4.1-mini-2025-04-14") == model_info("openai", "gpt-4.1-mini")


def test_vertex_falls_back_to_gemini():
    assert model_info("vertex", "gemini-2.5-pro") == ModelInfo(1.25, 10.0, 1_048_576)
    assert model_info("vertex", "gemini-2.0-flash-001") == model_info("gemini", "gemini-2.0-flash")


def test_gemini_models_prefix_is_ignored():
    assert model_info("gemini", "models/gemini-2.5-flash") == model_info(
        "gemini", "gemini-2.5-flash"
    )


def test_bedrock_ids_and_cross_region_profiles():
    haiku = model_info("bedrock", "anthropic.claude-3-haiku-20240307-v1:0")
    assert haiku == ModelInfo(0.25, 1.25, 200_000)
    assert model_info("bedrock", "us.anthropic.claude-3-haiku-20240307-v1:0") == haiku
    assert model_info("bedrock", "global.anthropic.claude-haiku-4-5-20251001-v1:0") is not None
    assert model_info("bedrock", "amazon.nova-lite-v1:0") is not None


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "no-such-model"),
        ("openai", ""),
        ("anthropic", "gpt-4o"),  # another provider's model
        ("ollama", "llama3.2"),  # a provider the table does not cover
        ("nowhere", "gpt-4o"),
        ("openrouter", "gpt-4o"),  # OpenRouter ids carry the vendor
    ],
)
def test_unknown_is_none(provider, model):
    assert model_info(provider, model) is None


def test_the_hugging_face_routers_provider_suffix_names_the_same_model():
    plain = model_info("huggingface", "meta-llama/Llama-3.1-8B-Instruct")
    assert plain == ModelInfo(None, None, 131_072)
    assert model_info("huggingface", "meta-llama/Llama-3.1-8B-Instruct:novita") == plain
    assert model_info("huggingface", "meta-llama/Llama-3.1-8B-Instruct:fastest") == plain
