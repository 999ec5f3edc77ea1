"""The ``turnout`` command.

Errors a caller can fix (bad input, a broken config) print one clear line and exit 2, before
anything is enqueued; a job that ran and failed exits 1. Output never contains an API key: the
CLI holds none, and what it prints comes from job records that workers have already redacted.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated, Any

import redis
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ops import cli as ops_cli
from routing.config import load_config
from routing.errors import ConfigError, InvalidRequest, JobTimeout, TurnoutError
from routing.fleet import RouteStatus, read_route_status
from routing.keys import Keys
from routing.models import Attempt, CompletionRequest, CompletionResult, JobState, Message
from routing.planning import routes_of
from workers.settings import Settings

app = typer.Typer(
    help="turnout: durable LLM completion jobs across many providers, with fleet-wide failover.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@app.command()
def submit(
    prompt: Annotated[str, typer.Option(help="The user message.")],
    system: Annotated[str | None, typer.Option(help="A system message.")] = None,
    policy: Annotated[str | None, typer.Option(help="A policy named in the config.")] = None,
    target: Annotated[
        list[str] | None, typer.Option(help="A deployment id; repeat for a fallback chain.")
    ] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Most tokens to generate.")] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Submitting the same key again returns the same job.")
    ] = None,
    wait: Annotated[bool, typer.Option(help="Wait for the job to finish.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds --wait waits.")] = 300.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Submit one completion job; with --wait, print its result."""
    from producers.client import Client

    try:
        messages = [Message(role="system", content=system)] if system else []
        messages.append(Message(role="user", content=prompt))
        request = CompletionRequest(
            messages=messages, max_tokens=max_tokens, idempotency_key=idempotency_key
        )
    except ValueError as exc:
        raise _fail(f"invalid request: {exc}") from None
    try:
        with Client() as client:
            handle = client.submit(request, policy=policy, targets=target)
            result = handle.wait(timeout) if wait else handle.result()
    except JobTimeout as exc:
        raise _fail(str(exc), code=1) from None
    except (InvalidRequest, ConfigError) as exc:
        raise _fail(str(exc)) from None
    except (TurnoutError, redis.RedisError) as exc:
        raise _fail(str(exc), code=1) from None
    _print_result(result, as_json=as_json)
    if result.state is JobState.FAILED:
        raise typer.Exit(1)


@app.command()
def show(
    job_id: Annotated[str, typer.Argument(help="The job id submit printed.")],
    wait: Annotated[bool, typer.Option(help="Wait for the job to finish.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds --wait waits.")] = 300.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Show a job: its state, result and attempt log."""
    from producers.client import Client

    try:
        with Client() as client:
            handle = client.job(job_id)
            result = handle.wait(timeout) if wait else handle.result()
    except (InvalidRequest, ConfigError) as exc:
        raise _fail(str(exc)) from None
    except (TurnoutError, redis.RedisError) as exc:
        raise _fail(str(exc), code=1) from None
    _print_result(result, as_json=as_json)


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """List every route (a deployment, or one key of its pool) with its breaker state as the
    fleet sees it, its latency and calls in flight, and the queue length."""
    settings = Settings()
    try:
        if settings.config_path is None:
            raise ConfigError("TURNOUT_CONFIG is not set; fix: point it at the config YAML")
        config = load_config(settings.config_path)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    keys = Keys(settings.namespace)
    routes = [
        route
        for deployment in config.deployments.values()
        for route in sorted(routes_of(deployment, config), key=lambda r: r.id)
    ]
    statuses: dict[str, RouteStatus] = {}
    queue_length: int | None = None
    try:
        with redis.Redis.from_url(
            settings.redis_url, socket_connect_timeout=2, socket_timeout=5
        ) as client:
            queue_length = int(client.llen(keys.prefix + keys.queue))
        with redis.Redis.from_url(
            settings.breaker_redis_url or settings.redis_url,
            socket_connect_timeout=2,
            socket_timeout=5,
        ) as breaker:
            read = read_route_status(breaker, keys.route_prefix, [r.id for r in routes])
            statuses = {s.route_id: s for s in read}
    except redis.RedisError as exc:
        err.print(f"[yellow]warning:[/] Redis unreachable ({exc}); breaker states unknown")
    rows = [(route, statuses.get(route.id)) for route in routes]
    report: dict[str, Any] = {
        "deployments": [
            {
                "id": route.id,
                "provider": route.deployment.provider,
                "model": route.deployment.model,
                "state": found.state if found else "unknown",
                "reason": found.reason if found else "",
                "open_until": found.open_until if found else None,
                "cooling_until": found.cooling_until if found else None,
                "latency_ms": found.latency_ms if found else None,
                "calls": found.calls if found else None,
                "error_rate": found.error_rate if found else None,
                "in_flight": found.in_flight if found else None,
            }
            for route, found in rows
        ],
        "queue": {"name": keys.queue, "length": queue_length},
    }
    if as_json:
        out.print_json(json.dumps(report))
        return
    table = Table(title="Routes (fleet-wide breaker)")
    for column in ("id", "provider", "model", "state", "latency", "errors", "in flight"):
        table.add_column(column)
    for route, found in rows:
        deployment = route.deployment
        table.add_row(
            *(escape(v) for v in (route.id, deployment.provider, deployment.model)),
            escape(_describe_state(found)),
            f"{found.latency_ms:.0f} ms" if found and found.latency_ms is not None else "-",
            f"{found.failures}/{found.calls}" if found and found.calls else "-",
            str(found.in_flight) if found else "?",
        )
    out.print(table)
    out.print(f"queue {keys.queue}: {queue_length if queue_length is not None else '?'} waiting")


def _describe_state(found: RouteStatus | None) -> str:
    if found is None:
        return "unknown"
    text = found.state + (f" ({found.reason})" if found.reason else "")
    if found.open_until:
        text += f" until {_clock(found.open_until)}"
    if found.cooling_until:
        text += f", cooling until {_clock(found.cooling_until)}"
    return text


def _clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))


def _print_attempts(attempts: list[Attempt]) -> None:
    """The attempt log, one line each: every call and every target passed over, with why."""
    for attempt in attempts:
        if attempt.outcome == "skipped":
            line = f"  {attempt.deployment}: skipped, {attempt.reason} ({attempt.message})"
        else:
            status = f" {attempt.status_code}" if attempt.status_code else ""
            line = f"  {attempt.deployment}: {attempt.outcome}{status}, {attempt.latency_ms:.0f} ms"
            if attempt.probe:
                line += ", probe"
            if attempt.retry_after_s is not None:
                line += f", retry-after {attempt.retry_after_s:g}s"
        err.print(escape(line), style="dim", highlight=False, soft_wrap=True)


def _print_result(result: CompletionResult, *, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(result.to_json_dict()) + "\n")
        return
    if result.state is JobState.SUCCEEDED:
        sys.stdout.write((result.text or "") + "\n")
        cost = f", ${result.cost_usd:.6f}" if result.cost_usd is not None else ""
        calls = sum(a.outcome != "skipped" for a in result.attempts)
        err.print(
            escape(
                f"job {result.job_id}: {result.deployment} ({result.provider}/{result.model}), "
                f"{calls} call(s){cost}"
            ),
            style="dim",
            highlight=False,
        )
        if len(result.attempts) > 1:
            _print_attempts(result.attempts)
    elif result.state is JobState.FAILED and result.error is not None:
        err.print(
            f"[red]job {result.job_id} failed[/] "
            + escape(f"[{result.error.error_class}] {result.error.message}"),
            highlight=False,
            soft_wrap=True,
        )
        _print_attempts(result.attempts)
    else:
        sys.stdout.write(f"{result.job_id} {result.state.value}\n")


app.command("simulate")(ops_cli.simulate)
app.command("up")(ops_cli.up)
app.command("demo")(ops_cli.demo)
app.add_typer(ops_cli.providers_app, name="providers")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
