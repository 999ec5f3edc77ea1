"""The ``turnout`` command: its root, which mounts every command of the layers below.

ops is the top layer, so the root lives here: the producers' commands (submit, show, batch,
serve) come from producers.cli, the operator's (status, breaker, providers, exporter) and the
local stack's (up, simulate, demo) from ops. Every command prints its errors through
producers.cli_support.fail: one line, exit 2 for what the caller can fix, 1 for what failed.
"""

from __future__ import annotations

import os
from importlib.metadata import version as distribution_version
from pathlib import Path
from typing import Annotated

import typer

from ops import exporter, fleet_commands, key_commands, process_commands, stack_commands
from producers import cli as producer_commands
from routing.settings import ENV_FILE_VAR

app = typer.Typer(
    help="turnout: durable LLM completion jobs across many providers, with fleet-wide failover.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Docstrings are wrapped for the source: markdown joins their lines into paragraphs.
    rich_markup_mode="markdown",
)

producer_commands.mount(app)
app.command("status")(fleet_commands.status)
app.add_typer(fleet_commands.breaker_app, name="breaker")
app.add_typer(fleet_commands.providers_app, name="providers")
app.add_typer(key_commands.keys_app, name="keys")
app.command("exporter")(exporter.exporter)
app.command("simulate")(stack_commands.simulate)
app.command("up")(stack_commands.up)
app.command("demo")(stack_commands.demo)
app.command("worker")(process_commands.worker)
app.command("beat")(process_commands.beat)
app.command("flower")(process_commands.flower)


def _print_version(asked: bool) -> None:
    if asked:
        typer.echo(f"turnout {distribution_version('turnout')}")
        raise typer.Exit()


@app.callback()
def root(
    config: Annotated[
        Path | None,
        typer.Option(
            help="The config file (sets TURNOUT_CONFIG for this command and what it starts).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    env_file: Annotated[
        Path | None,
        typer.Option(
            help="Read settings from this file instead of ./.env (sets TURNOUT_ENV_FILE).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", is_eager=True, callback=_print_version
        ),
    ] = False,
) -> None:
    """turnout: durable LLM completion jobs across many providers, with fleet-wide failover."""
    # Before any command builds its settings; the environment carries both to its children.
    if config is not None:
        os.environ["TURNOUT_CONFIG"] = str(config.resolve())
    if env_file is not None:
        os.environ[ENV_FILE_VAR] = str(env_file.resolve())


def main() -> None:
    app()


if __name__ == "__main__":
    main()
