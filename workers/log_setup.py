"""A worker's logging: every handler scrubs the secrets the worker knows of."""

from __future__ import annotations

import logging

from workers.redaction import Redactor, install_log_redaction
from workers.settings import Settings


def known_secrets(settings: Settings) -> list[str]:
    """Every API key the settings hold, and those the config names by custom variables."""
    secrets = [
        value.get_secret_value()
        for name in type(settings).model_fields
        if (value := getattr(settings, name)) is not None and hasattr(value, "get_secret_value")
    ]
    if settings.config_path is not None:
        from routing.config import load_config
        from routing.errors import ConfigError

        try:
            config = load_config(settings.config_path)
        except ConfigError:
            return secrets  # worker_init reports the config; nothing more to learn here
        secrets.extend(
            value
            for d in config.deployments.values()
            if d.key_env and (value := settings.value_of(d.key_env))
        )
    return secrets


def configure_worker_logging(logger: logging.Logger) -> None:
    install_log_redaction(Redactor(known_secrets(Settings())), logger)
    # httpx logs every request at INFO; a busy worker has better things to write.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
