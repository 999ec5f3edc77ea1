"""The local stack's commands: ``turnout simulate``, ``turnout up`` and ``turnout demo``."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ops.simulator import Faults
from ops.simulator.server import LOOPBACK, serve
from routing.masked_url import masked_url

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

    Protocols: openai, azure, anthropic, gemini, vertex, bedrock, cohere, ollama, huggingface,
    tgi, ai21, replicate, oobabooga. Faults can be changed while it runs: POST /_sim/faults
    with a JSON object such as {"fail_rate": 1, "fail_status": 503}; GET /_sim/state shows
    faults and request counts.
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


class StopRequested(Exception):
    """SIGTERM or SIGHUP reached ``turnout up``: stop as Ctrl-C does."""


def _stop_requested(signum: int, _frame: object) -> None:
    raise StopRequested(signal.Signals(signum).name)


#: What stops ``turnout up``: Ctrl-C, ``kill``, a service manager, the terminal going away.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def up(
    ctx: typer.Context,
    worker_concurrency: Annotated[int, typer.Option(help="Threads of the worker.")] = 8,
    flower_port: Annotated[int, typer.Option(help="Flower's port on 127.0.0.1.")] = 5555,
    config: Annotated[
        Path | None,
        typer.Option(
            help="Run this config's deployments (real keys from the environment and .env) "
            "instead of the two simulators.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    simulators: Annotated[
        bool,
        typer.Option(help="With --config: start the simulators too, their deployments added."),
    ] = False,
) -> None:
    """Start the local stack (Redis if none answers, two simulated providers or the
    deployments of --config, a worker, beat and Flower) and keep it running until Ctrl-C,
    SIGTERM or SIGHUP (a closed terminal), which stop everything it started; its children die
    with it even if it is SIGKILLed."""
    from ops.localstack import DEMO_SIMULATORS, LocalStack

    config = config or root_config(ctx)
    signal.signal(signal.SIGTERM, _stop_requested)
    signal.signal(signal.SIGHUP, _stop_requested)
    stack = LocalStack(
        worker_concurrency=worker_concurrency,
        flower_port=flower_port,
        config=config,
        simulators=DEMO_SIMULATORS if config is None or simulators else (),
    )
    try:
        with console.status("starting the local stack"):
            stack.start()
    except (KeyboardInterrupt, StopRequested):
        raise typer.Exit(0) from None  # start() stopped what it had started
    try:
        stack.wait_for_worker()
        say = partial(console.print, soft_wrap=True, highlight=False)
        say("[green]turnout is up.[/] In another shell:")
        for line in export_lines(stack.public_env()):
            say(line)
        say('  turnout submit --prompt "Hello" --wait')
        say(
            f"Flower: http://{LOOPBACK}:{stack.flower_port} "
            f"(user {stack.flower_user}, password {stack.flower_password})"
        )
        say(f"Logs: {stack.workdir}   Ctrl-C stops everything.")
        while True:
            time.sleep(1)
    except (KeyboardInterrupt, StopRequested):
        console.print("stopping...")
    finally:
        for signum in STOP_SIGNALS:  # a second signal must not cut the stop short
            signal.signal(signum, signal.SIG_IGN)
        stack.stop()


def root_config(ctx: typer.Context) -> Path | None:
    """The ``--config`` given to the root command (``turnout --config FILE up``), if any."""
    value = ctx.find_root().params.get("config")
    return Path(value) if value else None


def export_lines(env: Mapping[str, str]) -> list[str]:
    """The shell lines ``turnout up`` prints for ``env``, a password in a URL masked (a
    REDIS_URL with one came from the caller's own environment, which already holds it)."""
    lines = []
    for name, value in env.items():
        shown = masked_url(value)
        note = f"   # password masked: the one in your {name}" if shown != value else ""
        lines.append(f"  export {name}={shown}{note}")
    return lines


def demo(
    jobs: Annotated[int, typer.Option(help="Jobs in the batch.")] = 16,
) -> None:
    """Run a small batch across two simulated providers, kill the primary midway, and show
    which deployment served each job."""
    from ops.demo import run_demo

    raise typer.Exit(run_demo(jobs=jobs, console=Console()))
