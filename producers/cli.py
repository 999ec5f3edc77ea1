"""The producers' commands of ``turnout``: submit, show, batch and serve.

Output never contains an API key: a producer holds none, and what it prints comes from job
records that workers have already redacted. The root command is ops.cli, which mounts these.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import redis
import typer
from rich.markup import escape

from producers.cli_support import err, fail, out
from producers.http_front import serve as http_serve
from routing.errors import (
    ConfigError,
    InvalidRequest,
    JobNotFound,
    JobTimeout,
    SubmitError,
    TurnoutError,
)
from routing.lanes import LANES
from routing.models import (
    Attempt,
    CompletionRequest,
    CompletionResult,
    JobState,
    Lane,
    Message,
    Waiting,
)

LANE_HELP = (
    "The job's lane: interactive (a person waits) or bulk (a batch); a policy's lane overrides"
    " the default"
)


def _lane(name: str | None) -> Lane | None:
    """``--lane`` checked; a bad name is a clear error before anything is enqueued."""
    if name is None:
        return None
    if name not in LANES:
        raise fail(f"unknown lane {name!r}: choose from {', '.join(LANES)}")
    return name


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
    lane: Annotated[str | None, typer.Option(help=LANE_HELP + " (default interactive).")] = None,
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
        raise fail(f"invalid request: {exc}") from None
    chosen_lane = _lane(lane)
    try:
        with Client() as client:
            handle = client.submit(request, policy=policy, targets=target, lane=chosen_lane)
            result = handle.wait(timeout, on_waiting=_say_waiting) if wait else handle.result()
    except JobTimeout as exc:
        raise fail(str(exc), code=1) from None
    except (InvalidRequest, JobNotFound, ConfigError) as exc:
        raise fail(str(exc)) from None
    except (TurnoutError, redis.RedisError) as exc:
        raise fail(str(exc), code=1) from None
    _print_result(result, as_json=as_json)
    if result.state is JobState.FAILED:
        raise typer.Exit(1)


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
            result = handle.wait(timeout, on_waiting=_say_waiting) if wait else handle.result()
    except (InvalidRequest, JobNotFound, ConfigError) as exc:
        raise fail(str(exc)) from None
    except (TurnoutError, redis.RedisError) as exc:
        raise fail(str(exc), code=1) from None
    _print_result(result, as_json=as_json)


def _say_waiting(waiting: Waiting) -> None:
    """``--wait``'s line when the job starts waiting for its routes to return."""
    err.print(
        escape(f"waiting for {waiting.describe()}"), style="yellow", highlight=False, soft_wrap=True
    )


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
    redis_patience: Annotated[
        float,
        typer.Option(
            min=0,
            metavar="SECONDS",
            help="Ride out Redis being unreachable this long (a restart, a failover) before "
            "giving up.",
        ),
    ] = 300.0,  # producers.batch.BATCH_REDIS_PATIENCE_S
    lane: Annotated[str | None, typer.Option(help=LANE_HELP + " (default bulk).")] = None,
) -> None:
    """Run a JSONL file of chat completions through the queue: OpenAI Batch output format,
    resumable (run it again to finish an interrupted run; nothing runs twice)."""
    from producers.batch import run_batch
    from producers.batch_plan import BatchInputError
    from producers.batch_summary import summary_line, summary_table
    from producers.client import Client
    from producers.redis_patience import RedisPatience

    if not input_path.is_file():
        raise fail(f"no input file {input_path}")
    try:
        client = Client(lane=_lane(lane) or "bulk")
    except (ConfigError, InvalidRequest) as exc:
        raise fail(str(exc)) from None
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
            patience=RedisPatience(budget_s=redis_patience, setting="--redis-patience"),
        )
    except BatchInputError as exc:
        raise fail(str(exc)) from None
    except (SubmitError, redis.RedisError, OSError, TurnoutError) as exc:
        raise fail(f"{exc}; what was written is kept: run the same command again", code=1) from None
    except KeyboardInterrupt:
        err.print("interrupted: what was written is kept; run the same command again to finish")
        raise typer.Exit(130) from None
    finally:
        client.close()
    out.print(summary_table(outcome))
    out.print(summary_line(outcome), highlight=False, soft_wrap=True)
    if not outcome.clean:
        raise typer.Exit(1)


def _print_attempts(attempts: list[Attempt]) -> None:
    """The attempt log, one line each: every call and every target passed over, with why."""
    for attempt in attempts:
        err.print(escape(attempt_line(attempt)), style="dim", highlight=False, soft_wrap=True)


def attempt_line(attempt: Attempt) -> str:
    """One entry of the attempt log as ``show`` prints it. A skip's message already opens with
    its reason when the worker wrote it (``open (3 consecutive failures) until ...``), so the
    reason is printed once: only a message that does not name it is put in brackets after it."""
    if attempt.outcome == "skipped":
        reason, message = attempt.reason or "", attempt.message or ""
        if not message or message == reason:
            return f"  {attempt.deployment}: skipped, {reason}"
        if message.startswith(reason + " "):
            return f"  {attempt.deployment}: skipped, {message}"
        return f"  {attempt.deployment}: skipped, {reason} ({message})"
    status = f" {attempt.status_code}" if attempt.status_code else ""
    line = f"  {attempt.deployment}: {attempt.outcome}{status}, {attempt.latency_ms:.0f} ms"
    if attempt.probe:
        line += ", probe"
    if attempt.retry_after_s is not None:
        line += f", retry-after {attempt.retry_after_s:g}s"
    return line


def _print_result(result: CompletionResult, *, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(result.to_json_dict()) + "\n")
        return
    if result.state is JobState.SUCCEEDED:
        sys.stdout.write((result.text or "") + "\n")
        cost = f", ${result.cost_usd:.6f}" if result.cost_usd is not None else ""
        calls = len(result.provider_calls)
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
        if result.waiting is not None:
            _say_waiting(result.waiting)


def mount(app: typer.Typer) -> None:
    """Add the producers' commands (submit, show, batch, serve) to the ``turnout`` command,
    whose root lives in ops.cli."""
    for command in (submit, show, batch):
        app.command()(command)
    app.command("serve")(http_serve)
