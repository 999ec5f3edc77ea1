"""What every ``turnout`` command shares: its two consoles, the one error printer, the one
loader of settings and config.

Errors a caller can fix (bad input, a broken config) print one clear line and exit 2, before
anything is enqueued; a job that ran and failed exits 1. The ops commands (``turnout status``,
``breaker``, ``exporter``) print through the same ``fail``, so every command says "error: ..."
the same way.
"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

from routing.config import TurnoutConfig, load_configured
from routing.errors import ConfigError
from routing.settings import CoreSettings

out = Console()
err = Console(stderr=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: message`` on stderr; the caller raises what this returns (``from None``,
    so no traceback ever reaches the terminal)."""
    err.print(f"[red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def settings_and_config() -> tuple[CoreSettings, TurnoutConfig]:
    """The core settings and the config TURNOUT_CONFIG names, or exit 2 saying what to fix."""
    settings = CoreSettings()
    try:
        return settings, load_configured(settings.config_path)
    except ConfigError as exc:
        raise fail(str(exc)) from None
