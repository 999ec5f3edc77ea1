"""turnout providers: what is enabled, what is missing, keys masked."""

import pytest

from workers.providers.inventory import inventory, mask
from workers.settings import WorkerSettings


@pytest.fixture
def settings(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for name in (
        "OPENAI_API_KEY",
        "AZURE_API_KEY",
        "AZURE_BASE_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
        "GOOGLE_CLOUD_PROJECT",
        "GOOGLE_CLOUD_LOCATION",
        "OLLAMA_BASE_URL",
        "VLLM_API_BASE",
        "LMSTUDIO_BASE_URL",
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "TGI_BASE_URL",
        "AI21_API_KEY",
        "REPLICATE_API_TOKEN",
        "OOBABOOGA_API_BASE",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def rows(monkeypatch, **env):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return {row.name: row for row in inventory(WorkerSettings())}


def test_a_provider_is_enabled_only_with_all_its_variables(settings):
    table = rows(
        settings,
        AZURE_API_KEY="azure-key-0123456789",
        AWS_ACCESS_KEY_ID="AKIDEXAMPLE0",
        AWS_DEFAULT_REGION="us-east-1",
        GOOGLE_CLOUD_PROJECT="p",
    )
    assert (table["azure"].enabled, table["azure"].missing) == (False, ["AZURE_BASE_URL"])
    assert table["bedrock"].missing == ["AWS_SECRET_ACCESS_KEY"]
    assert table["vertex"].missing == [], "the location defaults to global, as in google-genai"
    assert table["openai"].missing == ["OPENAI_API_KEY"]


def test_local_servers_are_enabled_by_their_url(settings):
    table = rows(settings, OLLAMA_BASE_URL="http://127.0.0.1:11434")
    assert table["ollama"].enabled
    assert not table["vllm"].enabled
    assert table["vllm"].missing == ["VLLM_API_BASE"]


def test_keys_show_at_most_their_last_four_characters(settings):
    table = rows(settings, OPENAI_API_KEY="sk-test-0123456789abcdef", AZURE_API_KEY="short-key1")
    assert table["openai"].key == "…cdef"
    assert table["azure"].key == "…", "a short key shows nothing"
    assert mask(None) is None


def test_the_seeds_other_providers_are_listed_by_their_own_variables(settings):
    table = rows(
        settings,
        HUGGING_FACE_HUB_TOKEN="hf_older_name_0123456789",
        REPLICATE_API_TOKEN="r8_token_0123456789abcdef",
        OOBABOOGA_API_BASE="http://127.0.0.1:5000",
    )
    assert table["huggingface"].enabled, "huggingface_hub's older token name counts"
    assert table["huggingface"].key == "…6789"
    assert (table["replicate"].enabled, table["replicate"].protocol) == (True, "replicate")
    assert table["ai21"].missing == ["AI21_API_KEY"]
    assert table["oobabooga"].enabled, "a local server is enabled by its URL"
    assert table["tgi"].missing == ["TGI_BASE_URL"]
