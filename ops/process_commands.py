"""``turnout worker``, ``turnout beat`` and ``turnout flower``: one command per process of a
real deployment, each the command line ops.stack builds (the one ``turnout up``, the benchmarks
and the tests run), so a hand-started worker cannot drift from theirs.

Each replaces this process with its program (``os.execvp``): the PID a service manager or a
shell holds is Celery's own, and SIGTERM reaches it directly (a worker's warm shutdown, beat's
and Flower's exit), with no launcher in between to forward it or to die first.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from ops.stack import beat_command, flower_command, worker_command
from producers.cli_support import fail
from routing.errors import ConfigError
from routing.keys import Keys
from routing.lanes import parse_lanes, worker_queues
from routing.settings import CoreSettings

LOGLEVEL_HELP = "Celery's log level: debug, info, warning, error."


def exec_process(argv: list[str]) -> NoReturn:
    """Become ``argv`` (this venv's Python runs it, so this venv's Celery), environment and all."""
    os.execvp(argv[0], argv)  # noqa: S606 (our own argv, no shell: execvp is the point)


def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(help="Threads (jobs at once); default TURNOUT_CONCURRENCY (200).", min=1),
    ] = None,
    queue: Annotated[
        list[str] | None,
        typer.Option("--queue", "-Q", help="A queue to consume (repeatable); default every queue."),
    ] = None,
    lanes: Annotated[
        str | None,
        typer.Option(
            help="Consume only these lanes' queues (and beat's control queue), comma-separated: "
            "interactive, bulk. Default both, interactive first."
        ),
    ] = None,
    loglevel: Annotated[str, typer.Option(help=LOGLEVEL_HELP)] = "info",
    hostname: Annotated[
        str | None, typer.Option(help="Celery node name; default a fresh one, worker-<hex>@host.")
    ] = None,
) -> NoReturn:
    """Run a Celery worker: it takes jobs from Redis and calls the providers (threads pool;
    provider keys from the environment and .env). SIGTERM is a warm shutdown: running jobs
    finish (up to 30 s), the rest go back to the queue."""
    settings = CoreSettings()
    threads = concurrency or settings.worker_concurrency
    queues = list(queue or ())
    if lanes is not None:
        if queue:
            raise fail("give --lanes or --queue, not both")
        try:
            queues = worker_queues(Keys(settings.namespace), settings, parse_lanes(lanes))
        except ConfigError as exc:
            raise fail(str(exc)) from None
    argv = worker_command(concurrency=threads, queues=queues, loglevel=loglevel, hostname=hostname)
    exec_process(argv)


def beat(
    schedule_dir: Annotated[
        Path,
        typer.Option(
            help="Where beat keeps its schedule file (one directory per beat).",
            file_okay=False,
        ),
    ] = Path("."),
    loglevel: Annotated[str, typer.Option(help=LOGLEVEL_HELP)] = "info",
) -> NoReturn:
    """Run Celery beat: the reconciler (re-sends lost jobs), health checks and failback probes.
    One per fleet is enough; a second does no harm (the checks are claimed fleet-wide)."""
    schedule_dir.mkdir(parents=True, exist_ok=True)
    exec_process(beat_command(schedule_dir=schedule_dir, loglevel=loglevel))


def flower(
    port: Annotated[int, typer.Option(help="Flower's port.")] = 5555,
    address: Annotated[
        str, typer.Option(help="Address to listen on: loopback unless told.")
    ] = "127.0.0.1",
) -> NoReturn:
    """Run turnout's Flower (ops.guarded_flower) behind basic auth: the credentials come from
    FLOWER_BASIC_AUTH (user:password, never on the command line, where ps shows it), and it
    refuses to start without them or with a weak password."""
    from ops.guarded_flower import basic_auth_problem

    credentials = os.environ.get("FLOWER_BASIC_AUTH", "")
    pairs = credentials.split(",")
    if problem := basic_auth_problem(pairs):
        raise fail(problem)
    user, _, password = pairs[0].partition(":")
    try:
        command = flower_command(port=port, user=user, password=password, address=address)
    except (ConfigError, ValueError) as exc:
        raise fail(str(exc)) from None
    exec_process(command.argv)  # FLOWER_BASIC_AUTH travels on in this environment, every pair
