"""The env file settings read is chosen when they are built (TURNOUT_ENV_FILE, which
``turnout --env-file`` sets), not fixed when routing.settings is imported."""

from __future__ import annotations

from producers.settings import ProducerSettings
from routing.settings import ENV_FILE_VAR, CoreSettings


def test_settings_read_the_env_file_named_when_they_are_built(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TURNOUT_NAMESPACE", raising=False)
    (tmp_path / ".env").write_text("TURNOUT_NAMESPACE=from-dot-env\n")
    (tmp_path / "staging.env").write_text("TURNOUT_NAMESPACE=from-staging\n")
    assert CoreSettings().namespace == "from-dot-env"
    monkeypatch.setenv(ENV_FILE_VAR, str(tmp_path / "staging.env"))
    assert CoreSettings().namespace == "from-staging"
    assert ProducerSettings().namespace == "from-staging", "every subclass too"


def test_a_producers_settings_hold_no_provider_key_from_the_named_file(tmp_path, monkeypatch):
    (tmp_path / "keys.env").write_text("OPENAI_API_KEY=sk-should-never-load\n")
    monkeypatch.setenv(ENV_FILE_VAR, str(tmp_path / "keys.env"))
    assert "sk-should-never-load" not in repr(ProducerSettings().model_dump())
