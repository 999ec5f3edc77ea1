"""A producer's settings hold no provider credential, whatever the environment and .env hold.

"Producers never hold API keys" is a property of the code: ProducerSettings and CoreSettings
have no field for any, and a serve process started with canary keys in its environment and its
.env has none of them in its settings.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from producers.settings import ProducerSettings
from routing.settings import CoreSettings
from workers.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
CANARY = "sk-canary-0123456789abcdefghij"


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no stray .env
    # REDIS_URL too: ./dev test exports it, and it would mask the .env one these tests write.
    for name in (
        "REDIS_URL",
        "TURNOUT_API_TOKENS",
        "TURNOUT_SERVE_TIMEOUT",
        "TURNOUT_SERVE_MAX_BODY",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_no_producer_settings_class_has_a_credential_field():
    credentials = {
        name
        for name in WorkerSettings.model_fields
        if name not in CoreSettings.model_fields and name != "connect_timeout_s"
    }
    assert "openai_api_key" in credentials
    assert "aws_secret_access_key" in credentials
    assert not credentials & set(ProducerSettings.model_fields)
    assert not credentials & set(CoreSettings.model_fields)


def test_a_producer_loads_no_key_from_the_environment_or_dotenv(clean_env, tmp_path):
    clean_env.setenv("OPENAI_API_KEY", CANARY)
    (tmp_path / ".env").write_text(f"ANTHROPIC_API_KEY={CANARY}-dotenv\nREDIS_URL=redis://x:1/0\n")
    settings = ProducerSettings()
    assert settings.redis_url == "redis://x:1/0", ".env is still read for the core settings"
    assert CANARY not in repr(settings.model_dump())


def test_a_serve_process_settings_and_modules_hold_no_canary_key(tmp_path):
    """A separate interpreter as ``turnout serve`` builds it: its settings and the settings of
    the client it builds hold no canary, and no provider adapter module is loaded."""
    (tmp_path / ".env").write_text(f"GROQ_API_KEY={CANARY}-dotenv\n")
    probe = (
        "import sys\n"
        "from producers.settings import ProducerSettings\n"
        "from producers.client import Client\n"
        "from producers.http_front.app import create_app\n"
        "settings = ProducerSettings()\n"
        "dumped = repr(settings.model_dump()) + repr(vars(settings))\n"
        "print('CANARY' if 'sk-canary' in dumped else 'clean')\n"
        "print(sorted(m for m in sys.modules if m.startswith('workers')))\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "OPENAI_API_KEY": CANARY,
        "AWS_SECRET_ACCESS_KEY": CANARY,
    }
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert lines == ["clean", "[]"], done.stdout + done.stderr


def test_serve_settings_have_safe_defaults(clean_env):
    for name in ("TURNOUT_API_TOKENS", "TURNOUT_SERVE_TIMEOUT", "TURNOUT_SERVE_MAX_BODY"):
        clean_env.delenv(name, raising=False)
    settings = ProducerSettings()
    assert settings.api_tokens is None, "no token unless configured: serve then refuses to start"
    assert settings.serve_timeout_s == 60.0
    assert settings.serve_max_body_bytes == 8 * 1024 * 1024


def test_serve_settings_from_the_environment(clean_env):
    tokens = "first-token-0123456789,second-token-0123456789"
    clean_env.setenv("TURNOUT_API_TOKENS", f"{tokens}\n")
    clean_env.setenv("TURNOUT_SERVE_TIMEOUT", "2.5")
    clean_env.setenv("TURNOUT_SERVE_MAX_BODY", "65536")
    settings = ProducerSettings()
    assert settings.api_tokens is not None
    assert settings.api_tokens.get_secret_value() == tokens
    assert "first-token" not in repr(settings), "tokens are SecretStr"
    assert (settings.serve_timeout_s, settings.serve_max_body_bytes) == (2.5, 65536)
    clean_env.setenv("TURNOUT_API_TOKENS", "  ")
    assert ProducerSettings().api_tokens is None


@pytest.mark.parametrize(
    ("name", "value"),
    [("TURNOUT_SERVE_TIMEOUT", "0"), ("TURNOUT_SERVE_MAX_BODY", "100")],
)
def test_serve_settings_refuse_unusable_values(clean_env, name, value):
    clean_env.setenv(name, value)
    with pytest.raises(ValueError, match=name):
        ProducerSettings()
