import pytest
from pydantic import ValidationError

from workers.settings import WorkerSettings


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in ("OPENAI_API_KEY", "GROQ_API_KEY", "REDIS_URL", "TURNOUT_NAMESPACE", "MY_KEY_2"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_provider_variables_keep_the_providers_names(clean_env):
    clean_env.setenv("OPENAI_API_KEY", "sk-test-abcdefgh")
    clean_env.setenv("TURNOUT_NAMESPACE", "staging")
    settings = WorkerSettings()
    assert settings.value_of("OPENAI_API_KEY") == "sk-test-abcdefgh"
    assert settings.namespace == "staging"
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert "sk-test" not in repr(settings), "keys are SecretStr"


def test_blank_values_mean_unset(clean_env):
    clean_env.setenv("GROQ_API_KEY", "  ")
    settings = WorkerSettings()
    assert settings.groq_api_key is None
    assert not settings.is_set("GROQ_API_KEY")


def test_any_variable_a_config_names_is_read_from_env_then_dotenv(clean_env, tmp_path):
    assert WorkerSettings().value_of("MY_KEY_2") is None
    (tmp_path / ".env").write_text("MY_KEY_2=from-dotenv-123\nOPENAI_API_KEY=sk-dotenv-key1\n")
    settings = WorkerSettings()
    assert settings.value_of("MY_KEY_2") == "from-dotenv-123"
    assert settings.value_of("OPENAI_API_KEY") == "sk-dotenv-key1"
    clean_env.setenv("MY_KEY_2", "from-env-456")
    assert WorkerSettings().value_of("MY_KEY_2") == "from-env-456"


def test_values_lose_stray_whitespace_such_as_a_secret_files_newline(clean_env, tmp_path):
    clean_env.setenv("OPENAI_API_KEY", "sk-test-abcdefgh\n")
    clean_env.setenv("MY_KEY_2", "  custom-0123456789 \n")
    settings = WorkerSettings()
    assert settings.value_of("OPENAI_API_KEY") == "sk-test-abcdefgh"
    assert settings.value_of("MY_KEY_2") == "custom-0123456789"


def test_the_alert_webhook_is_a_secret_and_blank_means_unset(clean_env):
    url = "https://hooks.slack.com/services/T0/B0/sEcReT-t0ken"
    clean_env.setenv("TURNOUT_ALERT_WEBHOOK", f"{url}\n")
    settings = WorkerSettings()
    assert settings.alert_webhook is not None
    assert settings.alert_webhook.get_secret_value() == url
    assert "sEcReT" not in repr(settings)
    clean_env.setenv("TURNOUT_ALERT_WEBHOOK", " ")
    assert WorkerSettings().alert_webhook is None


def test_the_reply_budget_defaults_to_256_mib_and_must_hold_one_largest_reply_twice(clean_env):
    assert WorkerSettings().reply_budget_mb == 256
    clean_env.setenv("TURNOUT_REPLY_BUDGET_MB", "1024")
    assert WorkerSettings().reply_budget_mb == 1024
    clean_env.setenv("TURNOUT_REPLY_BUDGET_MB", "32")
    with pytest.raises(ValidationError, match="64"):
        WorkerSettings()
