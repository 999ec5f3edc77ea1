"""The ``turnout`` command.

Errors a caller can fix (bad input, a broken config) print one clear line and exit 2, before
anything is enqueued; a job that ran and failed exits 1. Output never contains an API key: the
CLI holds none, and what it prints comes from job records that workers have already redacted.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import redis
import typer
from rich.console import Console
from rich.markup import escape

from ops import cli as ops_cli
from ops import exporter as ops_exporter
from producers.http_front import serve as http_serve
from routing.config import TurnoutConfig, load_config
from routing.errors import ConfigError, InvalidRequest, JobTimeout, TurnoutError
from routing.fleet_admin import Action, operate_breaker
from routing.keys import Keys
from routing.models import Attempt, CompletionRequest, CompletionResult, JobState, Message
from workers.settings import Settings

app = typer.Typer(
    help="turnout: durable LLM completion jobs across many providers, with fleet-wide failover.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Docstrings are wrapped for the source: markdown joins their lines into paragraphs.
    rich_markup_mode="markdown",
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
    watch: Annotated[bool, typer.Option("--watch", help="Refresh in place until Ctrl-C.")] = False,
    every: Annotated[float, typer.Option(help="Seconds between refreshes with --watch.")] = 2.0,
) -> None:
    """Every route (a deployment, or one key of its pool) as the fleet sees it: breaker state and
    since when, last health check, p50/p95 latency and error rate over the last 5 minutes, calls
    in flight, calls, tokens and cost today, rate-limit headroom; queue length and jobs by
    state."""
    from producers.fleet_view import as_json as view_json
    from producers.fleet_view import as_tables, read_fleet

    settings, config = _settings_and_config()

    def read() -> Any:
        try:
            return read_fleet(settings, config)
        except redis.RedisError as exc:
            raise _fail(f"Redis unreachable: {exc}", code=1) from None

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


@app.command()
def batch(
    input_path: Annotated[
        Path, typer.Argument(metavar="INPUT.jsonl", help="OpenAI Batch API lines, or plain ones.")
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", metavar="OUTPUT.jsonl", help="Appended; failures go beside it."
        ),
    ],
    policy: Annotated[
        str | None,
        typer.Option(help="A policy, deployment or alias for every line (else each body's model)."),
    ] = None,
    max_in_flight: Annotated[
        int, typer.Option(min=1, max=10_000, help="Jobs submitted and not yet finished, at most.")
    ] = 32,
    strict: Annotated[
        bool, typer.Option(help="Stop at the first invalid line (before anything is enqueued).")
    ] = False,
    retry_failed: Annotated[
        bool, typer.Option(help="Run lines in OUTPUT.errors.jsonl again, as new jobs.")
    ] = False,
) -> None:
    """Run a JSONL file of chat completions through the queue: OpenAI Batch output format,
    resumable (run it again to finish an interrupted run; nothing runs twice)."""
    from producers.batch import BatchInputError, run_batch, summary_line, summary_table
    from producers.client import Client, SubmitError

    if not input_path.is_file():
        raise _fail(f"no input file {input_path}")
    try:
        client = Client()
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    try:
        outcome = run_batch(
            client,
            input_path,
            output,
            policy=policy,
            max_in_flight=max_in_flight,
            strict=strict,
            retry_failed=retry_failed,
            console=err,
        )
    except BatchInputError as exc:
        raise _fail(str(exc)) from None
    except (SubmitError, redis.RedisError, OSError, TurnoutError) as exc:
        raise _fail(
            f"{exc}; what was written is kept: run the same command again", code=1
        ) from None
    except KeyboardInterrupt:
        err.print("interrupted: what was written is kept; run the same command again to finish")
        raise typer.Exit(130) from None
    finally:
        client.close()
    out.print(summary_table(outcome))
    out.print(summary_line(outcome), highlight=False, soft_wrap=True)
    if not outcome.clean:
        raise typer.Exit(1)


breaker_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Open, close or reset a route's fleet-wide breaker by hand (ID as turnout status lists).",
)
app.add_typer(breaker_app, name="breaker")


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
    from producers.fleet_view import all_routes

    settings, config = _settings_and_config()
    known = [r.id for r in all_routes(config)]
    if route_id not in known:
        raise _fail(f"unknown route {route_id!r}; routes: {', '.join(known)}")
    url = settings.breaker_redis_url or settings.redis_url
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5) as client:
            keys = Keys(settings.namespace)
            transition = operate_breaker(
                client, keys.route_prefix, route_id, action, open_for_s=for_s
            )
    except redis.RedisError as exc:
        raise _fail(f"Redis unreachable: {exc}", code=1) from None
    from workers.alerts import process_source, sink_from_settings
    from workers.announce import Announcer

    sink = sink_from_settings(settings)
    Announcer(sink, config, process_source("cli"))(transition)
    sink.close(timeout_s=10.0)  # the alert goes out before the command returns
    out.print(f"{route_id}: {transition.state} ({transition.reason})", highlight=False)


def _settings_and_config() -> tuple[Settings, TurnoutConfig]:
    settings = Settings()
    try:
        if settings.config_path is None:
            raise ConfigError("TURNOUT_CONFIG is not set; fix: point it at the config YAML")
        return settings, load_config(settings.config_path)
    except ConfigError as exc:
        raise _fail(str(exc)) from None


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
app.command("exporter")(ops_exporter.exporter)
app.command("serve")(http_serve)
app.add_typer(ops_cli.providers_app, name="providers")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
