"""The ``turnout`` command: its root, which mounts every command of the layers below.

ops is the top layer, so the root lives here: the producers' commands (submit, show, batch,
serve) come from producers.cli, the operator's (status, breaker, providers, exporter) and the
local stack's (up, simulate, demo) from ops. Every command prints its errors through
producers.cli_support.fail: one line, exit 2 for what the caller can fix, 1 for what failed.
"""

from __future__ import annotations

import typer

from ops import exporter, fleet_commands, stack_commands
from producers import cli as producer_commands

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
app.command("exporter")(exporter.exporter)
app.command("simulate")(stack_commands.simulate)
app.command("up")(stack_commands.up)
app.command("demo")(stack_commands.demo)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
