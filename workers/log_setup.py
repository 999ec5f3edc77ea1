"""A worker's logging: every handler scrubs the secrets the worker knows of."""

from __future__ import annotations

import contextlib
import logging

from workers.redaction import Redactor, install_log_redaction, secrets_of
from workers.settings import WorkerSettings


def known_secrets(settings: WorkerSettings) -> list[str]:
    """What the worker's logs must never show (workers.redaction.secrets_of), for the config
    TURNOUT_CONFIG names, if it can be read."""
    config = None
    if settings.config_path is not None:
        from routing.config import load_config
        from routing.errors import ConfigError

        # worker_init reports a broken config; settings' own secrets still count meanwhile.
        with contextlib.suppress(ConfigError):
            config = load_config(settings.config_path)
    return secrets_of(settings, config)


def configure_worker_logging(logger: logging.Logger) -> None:
    install_log_redaction(Redactor(known_secrets(WorkerSettings())), logger)
    # httpx logs every request at INFO; a busy worker has better things to write.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    # botocore logs whole STS and SSO replies at DEBUG, fresh secret keys and session tokens
    # included, before anyone could tell a redactor about them (workers.providers.aws_credentials)
    logging.getLogger("botocore").setLevel(logging.WARNING)
