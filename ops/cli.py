"""Operator commands: ``turnout simulate``, ``turnout up`` and ``turnout demo``."""

from __future__ import annotations

import json
import os
import sys
import time
from functools import partial
from typing import Annotated

import typer
from rich.console import Console

from ops.simulator import Faults
from ops.simulator.server import LOOPBACK, serve

console = Console(stderr=True)


def simulate(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 9101,
    protocol: Annotated[str, typer.Option(help="Wire protocol to speak.")] = "openai",
    name: Annotated[str, typer.Option(help="Name shown in replies.")] = "sim",
    model: Annotated[list[str] | None, typer.Option(help="Models listed by /v1/models.")] = None,
    latency_ms: Annotated[float, typer.Option(help="Delay before every answer.")] = 0.0,
    fail_rate: Annotated[float, typer.Option(help="Share of requests that fail (0-1).")] = 0.0,
    fail_status: Annotated[int, typer.Option(help="Status of failed requests.")] = 503,
    retry_after: Annotated[
        float | None, typer.Option(help="retry-after seconds sent with failures.")
    ] = None,
    hang: Annotated[bool, typer.Option(help="Accept requests and never answer.")] = False,
    malformed: Annotated[bool, typer.Option(help="Answer 200 with a broken body.")] = False,
    seed: Annotated[int | None, typer.Option(help="Seed for fail-rate draws.")] = None,
) -> None:
    """Run a simulated provider on 127.0.0.1, checking the key in TURNOUT_SIM_API_KEY.

    Protocols: openai, azure, anthropic, gemini, vertex, bedrock, cohere, ollama. Faults can
    be changed while it runs: POST /_sim/faults with a JSON object such as
    {"fail_rate": 1, "fail_status": 503}; GET /_sim/state shows faults and request counts.
    """
    from ops.simulator.registry import SIMULATORS, simulator_class

    if protocol not in SIMULATORS:
        raise typer.BadParameter(f"no simulator for {protocol!r}; have: {', '.join(SIMULATORS)}")
    faults = Faults(
        latency_ms=latency_ms,
        fail_rate=fail_rate,
        fail_status=fail_status,
        retry_after_s=retry_after,
        hang=hang,
        malformed=malformed,
    )
    try:
        faults.updated({})
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    app = simulator_class(protocol)(
        name=name,
        api_key=os.environ.get("TURNOUT_SIM_API_KEY") or None,
        faults=faults,
        models=model or None,
        seed=seed,
    )
    console.print(f"[bold]{name}[/] ({protocol}) on http://{LOOPBACK}:{port}")
    serve(app, port=port)


def simulate_main() -> None:
    typer.run(simulate)


def up(
    worker_concurrency: Annotated[int, typer.Option(help="Threads of the worker.")] = 8,
    flower_port: Annotated[int, typer.Option(help="Flower's port on 127.0.0.1.")] = 5555,
) -> None:
    """Start the local stack (Redis if none answers, two simulated providers, a worker, beat
    and Flower) and keep it running until Ctrl-C, which stops everything it started."""
    from ops.localstack import LocalStack

    stack = LocalStack(worker_concurrency=worker_concurrency, flower_port=flower_port)
    with console.status("starting the local stack"):
        stack.start()
    try:
        stack.wait_for_worker()
        say = partial(console.print, soft_wrap=True, highlight=False)
        say("[green]turnout is up.[/] In another shell:")
        for name, value in stack.public_env().items():
            say(f"  export {name}={value}")
        say('  turnout submit --prompt "Hello" --wait')
        say(
            f"Flower: http://{LOOPBACK}:{stack.flower_port} "
            f"(user {stack.flower_user}, password {stack.flower_password})"
        )
        say(f"Logs: {stack.workdir}   Ctrl-C stops everything.")
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        console.print("stopping...")
    finally:
        stack.stop()


def demo(
    jobs: Annotated[int, typer.Option(help="Jobs in the batch.")] = 16,
) -> None:
    """Run a small batch across two simulated providers, kill the primary midway, and show
    which deployment served each job."""
    from ops.demo import run_demo

    raise typer.Exit(run_demo(jobs=jobs, console=Console()))


providers_app = typer.Typer(
    help="Which providers this environment enables, and whether their credentials work.",
    invoke_without_command=True,
    add_completion=False,
)


@providers_app.callback()
def providers(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """List every provider: enabled or not, the variables it misses, its key (masked)."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.table import Table

    from workers.providers.inventory import inventory
    from workers.settings import Settings

    rows = inventory(Settings())
    if as_json:
        sys.stdout.write(json.dumps({"providers": [row.as_dict() for row in rows]}) + "\n")
        return
    table = Table(title="Providers")
    for column in ("provider", "protocol", "enabled", "missing", "key"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row.name,
            row.protocol,
            "yes" if row.enabled else "no",
            ", ".join(row.missing),
            row.key or "",
        )
    Console().print(table)


@providers_app.command("check")
def providers_check(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds each probe may take.")] = 10.0,
) -> None:
    """Probe every enabled provider's cheapest authenticated endpoint, all at once; exit 1 when
    any fails."""
    from rich.markup import escape
    from rich.table import Table

    from routing.config import load_config
    from routing.errors import ConfigError
    from workers.http import HttpcoreTransport
    from workers.log_setup import known_secrets
    from workers.providers.inventory import check_enabled
    from workers.redaction import Redactor
    from workers.settings import Settings

    settings = Settings()
    config = None
    if settings.config_path is not None:
        try:
            config = load_config(settings.config_path)
        except ConfigError as exc:
            console.print(f"[yellow]ignoring the config:[/] {escape(str(exc))}")
    transport = HttpcoreTransport(connect_timeout_s=min(5.0, timeout))
    try:
        results = check_enabled(
            settings,
            transport,
            config=config,
            timeout_s=timeout,
            redact=Redactor(known_secrets(settings)),
        )
    finally:
        transport.close()
    failed = [r for r in results if not r.ok]
    if as_json:
        sys.stdout.write(json.dumps({"results": [r.as_dict() for r in results]}) + "\n")
    elif not results:
        console.print("no provider is enabled: set its variables (turnout providers lists them)")
    else:
        table = Table(title="Credential check")
        for column in ("provider", "status", "ms", "detail"):
            table.add_column(column)
        for r in results:
            style = "green" if r.ok else "red"
            table.add_row(
                r.provider, f"[{style}]{r.status}[/]", f"{r.latency_ms:.0f}", escape(r.detail)
            )
        Console().print(table)
        for r in failed:
            console.print(f"[bold]{r.provider}[/]: {escape(r.hint)}", soft_wrap=True)
    if failed:
        raise typer.Exit(1)
