"""The names users already have: LiteLLM's AZURE_API_BASE and AWS_REGION_NAME, GOOGLE_API_KEY
(which google-genai reads first), Letta's openai_api_base; and ``turnout providers check``
saying which name a value came from."""

import pytest

from routing.catalog import PROVIDERS
from workers.providers.inventory import alias_notes
from workers.settings import WorkerSettings

ALIASES = ("AZURE_API_BASE", "AZURE_BASE_URL", "OPENAI_API_BASE", "OPENAI_BASE_URL",
           "GOOGLE_API_KEY", "GEMINI_API_KEY", "AWS_REGION_NAME", "AWS_REGION")  # fmt: skip


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in ALIASES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_each_alias_fills_our_variable_and_says_where_it_came_from(env):
    env.setenv("AZURE_API_BASE", "https://res.openai.azure.com")
    env.setenv("openai_api_base", "http://127.0.0.1:8000/v1")
    env.setenv("GOOGLE_API_KEY", "google-api-key-0123456789")
    env.setenv("AWS_REGION_NAME", "eu-west-3")
    settings = WorkerSettings()
    assert settings.value_of("AZURE_BASE_URL") == "https://res.openai.azure.com"
    assert settings.value_of("OPENAI_BASE_URL") == "http://127.0.0.1:8000/v1"
    assert settings.value_of("GEMINI_API_KEY") == "google-api-key-0123456789"
    assert settings.aws_region == "eu-west-3"
    assert settings.source_of("AZURE_BASE_URL") == "AZURE_API_BASE"
    assert settings.source_of("OPENAI_BASE_URL") == "OPENAI_API_BASE"
    assert settings.source_of("GEMINI_API_KEY") == "GOOGLE_API_KEY"
    assert alias_notes(PROVIDERS["azure"], settings) == [
        "AZURE_BASE_URL read from AZURE_API_BASE (LiteLLM's name)"
    ]
    assert alias_notes(PROVIDERS["gemini"], settings) == [
        "GEMINI_API_KEY read from GOOGLE_API_KEY (google-genai's and LiteLLM's name)"
    ]


def test_our_own_name_wins_and_needs_no_note(env):
    env.setenv("AZURE_BASE_URL", "https://ours.openai.azure.com")
    env.setenv("AZURE_API_BASE", "https://theirs.openai.azure.com")
    settings = WorkerSettings()
    assert settings.value_of("AZURE_BASE_URL") == "https://ours.openai.azure.com"
    assert settings.source_of("AZURE_BASE_URL") == "AZURE_BASE_URL"
    assert alias_notes(PROVIDERS["azure"], settings) == []
    assert settings.source_of("COHERE_BASE_URL") is None


def test_google_api_key_wins_over_gemini_api_key_as_in_google_genai(env):
    env.setenv("GEMINI_API_KEY", "gemini-api-key-0123456789")
    env.setenv("GOOGLE_API_KEY", "google-api-key-0123456789")
    assert WorkerSettings().value_of("GEMINI_API_KEY") == "google-api-key-0123456789"


def test_an_alias_in_dotenv_counts_and_the_environment_still_wins(env, tmp_path):
    (tmp_path / ".env").write_text("AZURE_API_BASE=https://dotenv.openai.azure.com\n")
    settings = WorkerSettings()
    assert settings.value_of("AZURE_BASE_URL") == "https://dotenv.openai.azure.com"
    assert settings.source_of("AZURE_BASE_URL") == "AZURE_API_BASE"
    env.setenv("AZURE_BASE_URL", "https://env.openai.azure.com")
    assert WorkerSettings().source_of("AZURE_BASE_URL") == "AZURE_BASE_URL"
