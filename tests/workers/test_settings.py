import pytest

from workers.settings import Settings


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in ("OPENAI_API_KEY", "GROQ_API_KEY", "REDIS_URL", "TURNOUT_NAMESPACE", "MY_KEY_2"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_provider_variables_keep_the_providers_names(clean_env):
    clean_env.setenv("OPENAI_API_KEY", "sk-test-abcdefgh")
    clean_env.setenv("TURNOUT_NAMESPACE", "staging")
    settings = Settings()
    assert settings.value_of("OPENAI_API_KEY") == "sk-test-abcdefgh"
    assert settings.namespace == "staging"
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert "sk-test" not in repr(settings), "keys are SecretStr"


def test_blank_values_mean_unset(clean_env):
    clean_env.setenv("GROQ_API_KEY", "  ")
    settings = Settings()
    assert settings.groq_api_key is None
    assert not settings.is_set("GROQ_API_KEY")


def test_any_variable_a_config_names_is_read_from_env_then_dotenv(clean_env, tmp_path):
    assert Settings().value_of("MY_KEY_2") is None
    (tmp_path / ".env").write_text("MY_KEY_2=from-dotenv-123\nOPENAI_API_KEY=sk-dotenv-key1\n")
    settings = Settings()
    assert settings.value_of("MY_KEY_2") == "from-dotenv-123"
    assert settings.value_of("OPENAI_API_KEY") == "sk-dotenv-key1"
    clean_env.setenv("MY_KEY_2", "from-env-456")
    assert Settings().value_of("MY_KEY_2") == "from-env-456"


def test_values_lose_stray_whitespace_such_as_a_secret_files_newline(clean_env, tmp_path):
    clean_env.setenv("OPENAI_API_KEY", "sk-test-abcdefgh\n")
    clean_env.setenv("MY_KEY_2", "  custom-0123456789 \n")
    settings = Settings()
    assert settings.value_of("OPENAI_API_KEY") == "sk-test-abcdefgh"
    assert settings.value_of("MY_KEY_2") == "custom-0123456789"


def test_the_alert_webhook_is_a_secret_and_blank_means_unset(clean_env):
    url = "https://hooks.slack.com/services/T0/B0/sEcReT-t0ken"
    clean_env.setenv("TURNOUT_ALERT_WEBHOOK", f"{url}\n")
    settings = Settings()
    assert settings.alert_webhook is not None
    assert settings.alert_webhook.get_secret_value() == url
    assert "sEcReT" not in repr(settings)
    clean_env.setenv("TURNOUT_ALERT_WEBHOOK", " ")
    assert Settings().alert_webhook is None


def test_serve_settings_have_safe_defaults(clean_env):
    for name in ("TURNOUT_API_TOKENS", "TURNOUT_SERVE_TIMEOUT", "TURNOUT_SERVE_MAX_BODY"):
        clean_env.delenv(name, raising=False)
    settings = Settings()
    assert settings.api_tokens is None, "no token unless configured: serve then refuses to start"
    assert settings.serve_timeout_s == 60.0
    assert settings.serve_max_body_bytes == 8 * 1024 * 1024


def test_serve_settings_from_the_environment(clean_env):
    tokens = "first-token-0123456789,second-token-0123456789"
    clean_env.setenv("TURNOUT_API_TOKENS", f"{tokens}\n")
    clean_env.setenv("TURNOUT_SERVE_TIMEOUT", "2.5")
    clean_env.setenv("TURNOUT_SERVE_MAX_BODY", "65536")
    settings = Settings()
    assert settings.api_tokens is not None
    assert settings.api_tokens.get_secret_value() == tokens
    assert "first-token" not in repr(settings), "tokens are SecretStr"
    assert (settings.serve_timeout_s, settings.serve_max_body_bytes) == (2.5, 65536)
    clean_env.setenv("TURNOUT_API_TOKENS", "  ")
    assert Settings().api_tokens is None


@pytest.mark.parametrize(
    ("name", "value"),
    [("TURNOUT_SERVE_TIMEOUT", "0"), ("TURNOUT_SERVE_MAX_BODY", "100")],
)
def test_serve_settings_refuse_unusable_values(clean_env, name, value):
    clean_env.setenv(name, value)
    with pytest.raises(ValueError, match=name):
        Settings()
