"""The demo: a batch through the local stack, the primary provider killed midway.

It shows the main promise of turnout end to end, with real processes: jobs keep completing when
a provider dies, because workers fail over along the job's policy, and the attempt log of every
job says what happened.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ops.localstack import LocalStack
from producers.client import Client
from routing.models import CompletionResult

PRIMARY, SECONDARY = "sim-primary", "sim-secondary"


def route(result: CompletionResult) -> str:
    """The attempt log as one line: ``sim-primary ✗ connection → sim-secondary ✓``, and
    ``sim-primary ⊘ open`` for a target the fleet's breaker passed over."""
    steps = []
    for a in result.attempts:
        if a.outcome == "ok":
            steps.append(f"{a.deployment} ✓")
        elif a.outcome == "skipped":
            steps.append(f"{a.deployment} ⊘ {a.reason}")
        else:
            steps.append(f"{a.deployment} ✗ {a.outcome}")
    return " → ".join(steps) or "-"


def run_demo(*, jobs: int, console: Console) -> int:
    stack = LocalStack(worker_concurrency=4)
    with console.status("starting Redis, two simulated providers, a worker, beat and Flower"):
        stack.start()
        try:
            stack.wait_for_worker()
        except BaseException:
            stack.stop()
            raise
    client: Client | None = None
    try:
        client = Client(settings=stack.client_settings(), config=stack.config_path)
        console.print(
            f"Submitting {jobs} jobs with policy [bold]default[/]: {PRIMARY} first, "
            f"{SECONDARY} as fallback."
        )
        handles = [
            client.submit(f"Demo question {n}: what is {n} squared?", policy="default")
            for n in range(1, jobs + 1)
        ]
        half = jobs // 2
        results = [handle.wait(timeout=60) for handle in handles[:half]]
        console.print(f"[bold red]{half} jobs done: killing {PRIMARY} (SIGKILL).[/]")
        stack.kill_simulator(PRIMARY)
        results += [handle.wait(timeout=120) for handle in handles[half:]]
    finally:
        if client is not None:
            client.close()
        stack.stop()

    table = Table(title="Which deployment served each job")
    for column in ("#", "state", "served by", "route (attempt log)", "ms"):
        table.add_column(column, justify="right" if column in ("#", "ms") else "left")
    for number, result in enumerate(results, start=1):
        elapsed = (
            f"{(result.finished_at - result.created_at) * 1000:.0f}"
            if result.finished_at and result.created_at
            else "-"
        )
        table.add_row(
            str(number),
            result.state.value,
            escape(result.deployment or "-"),
            escape(route(result)),
            elapsed,
        )
    console.print(table)
    served = {name: sum(r.deployment == name for r in results) for name in (PRIMARY, SECONDARY)}
    succeeded = sum(r.succeeded for r in results)
    console.print(
        f"{succeeded}/{len(results)} succeeded: {served[PRIMARY]} on {PRIMARY}, "
        f"{served[SECONDARY]} on {SECONDARY} after the failover."
    )
    return 0 if succeeded == len(results) and all(served.values()) else 1
