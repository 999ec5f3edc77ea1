"""The fleet's commands: ``turnout status``, ``turnout breaker``, ``turnout providers``.

What an operator runs to see the fleet and put a hand on it. They read the same Redis the
workers write; ``providers`` reads this machine's provider variables (the worker's settings),
which is why it lives here and not among the producers' commands.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated, Any

import redis
import typer
from rich.console import Console

from producers.cli_support import err, fail, out, settings_and_config
from routing.fleet_admin import Action, operate_breaker
from routing.keys import Keys

console = err


def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    watch: Annotated[bool, typer.Option("--watch", help="Refresh in place until Ctrl-C.")] = False,
    every: Annotated[float, typer.Option(help="Seconds between refreshes with --watch.")] = 2.0,
) -> None:
    """Every route (a deployment, or one key of its pool) as the fleet sees it: breaker state and
    since when, last health check, p50/p95 latency and error rate over the last 5 minutes, calls
    in flight, calls, tokens and cost today, rate-limit headroom; queue length and jobs by
    state; the day's spend over every route, and Redis's time of the reading (--watch refreshes
    it, on the same Redis connections)."""
    from ops.amqp_queues import BrokerUnreachable
    from ops.fleet_view import FleetReader, as_tables
    from ops.fleet_view import as_json as view_json

    settings, config = settings_and_config()
    with FleetReader(settings, config) as reader:

        def read() -> Any:
            try:
                return reader.read()
            except redis.RedisError as exc:
                raise fail(f"Redis unreachable: {exc}", code=1) from None
            except BrokerUnreachable as exc:
                raise fail(str(exc), code=1) from None

        if as_json:
            out.print_json(json.dumps(view_json(read())))
            return
        if not watch:
            out.print(as_tables(read()))
            return
        from rich.live import Live

        with Live(as_tables(read()), console=out, refresh_per_second=4) as live:
            try:
                while True:
                    time.sleep(every)
                    live.update(as_tables(read()))
            except KeyboardInterrupt:
                pass


breaker_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Open, close or reset a route's fleet-wide breaker by hand (ID as turnout status lists).",
)


@breaker_app.command("open")
def breaker_open(
    route_id: Annotated[str, typer.Argument(help="A route id from turnout status.")],
    for_s: Annotated[float, typer.Option("--for", help="Seconds it stays open.")] = 3600.0,
) -> None:
    """Take a route out of rotation: jobs pass it over (then probes decide, as usual)."""
    _operate(route_id, "open", for_s)


@breaker_app.command("close")
def breaker_close(
    route_id: Annotated[str, typer.Argument(help="A route id from turnout status.")],
) -> None:
    """Put a route back in rotation now (the way back from failback: manual)."""
    _operate(route_id, "close", 0)


@breaker_app.command("reset")
def breaker_reset(
    route_id: Annotated[str, typer.Argument(help="A route id from turnout status.")],
) -> None:
    """Forget a route's breaker state (its statistics stay)."""
    _operate(route_id, "reset", 0)


def _operate(route_id: str, action: Action, for_s: float) -> None:
    from ops.fleet_view import all_routes

    settings, config = settings_and_config()
    known = [r.id for r in all_routes(config)]
    if route_id not in known:
        raise fail(f"unknown route {route_id!r}; routes: {', '.join(known)}")
    url = settings.breaker_redis_url or settings.redis_url
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5) as client:
            keys = Keys(settings.namespace)
            transition = operate_breaker(
                client, keys.route_prefix, route_id, action, open_for_s=for_s
            )
    except redis.RedisError as exc:
        raise fail(f"Redis unreachable: {exc}", code=1) from None
    from workers.alerts import process_source, sink_from_settings
    from workers.announce import Announcer
    from workers.settings import WorkerSettings

    # The alert webhook is a worker-side secret: the operator's hand alerts as a worker would.
    sink = sink_from_settings(WorkerSettings())
    Announcer(sink, config, process_source("cli"))(transition)
    sink.close(timeout_s=10.0)  # the alert goes out before the command returns
    out.print(f"{route_id}: {transition.state} ({transition.reason})", highlight=False)


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
    from rich.markup import escape
    from rich.table import Table

    from routing.config import load_configured
    from routing.errors import ConfigError
    from workers.providers.inventory import inventory, unset_variables
    from workers.settings import WorkerSettings

    settings = WorkerSettings()
    rows = inventory(settings)
    unset = []
    if settings.config_path is not None:
        try:
            unset = unset_variables(load_configured(settings.config_path), settings)
        except ConfigError as exc:
            err.print(f"[yellow]ignoring the config:[/] {escape(str(exc))}")
    if as_json:
        document = {"providers": [row.as_dict() for row in rows]}
        document["unset"] = [u.as_dict() for u in unset]
        sys.stdout.write(json.dumps(document) + "\n")
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
    if unset:
        gaps = Table(title="Config entries whose variable is unset (out of rotation)")
        for column in ("deployment", "provider", "config", "variable"):
            gaps.add_column(column)
        for u in unset:
            gaps.add_row(u.deployment, u.provider, u.path, u.variable)
        Console().print(gaps)


@providers_app.command("check")
def providers_check(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds each probe may take.")] = 10.0,
) -> None:
    """Probe every enabled provider's cheapest authenticated endpoint, all at once; exit 1 when
    any fails."""
    from rich.markup import escape
    from rich.table import Table

    from routing.config import load_configured
    from routing.errors import ConfigError
    from workers.http import HttpcoreTransport
    from workers.log_setup import known_secrets
    from workers.providers.inventory import check_enabled
    from workers.redaction import Redactor
    from workers.settings import WorkerSettings

    settings = WorkerSettings()
    config = None
    if settings.config_path is not None:
        try:
            config = load_configured(settings.config_path)
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
        for r in results:
            for note in r.notes:
                console.print(f"{r.provider}: {escape(note)}", soft_wrap=True, highlight=False)
    if failed:
        raise typer.Exit(1)
