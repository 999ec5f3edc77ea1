"""What a batch run did, counted as results arrive: for the progress bar, the per-deployment
table and the two summary lines an unattended run leaves in its log (how long, how many retries
and failovers, which error classes failed)."""

from __future__ import annotations

import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from producers.batch_plan import BatchPlan
from routing.models import CompletionResult, JobState


@dataclass
class DeploymentTally:
    jobs: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def p50_ms(self) -> float | None:
        return statistics.median(self.latencies_ms) if self.latencies_ms else None


@dataclass
class BatchTally:
    """What this run did, for the progress bar and the summary."""

    succeeded: int = 0
    failed: int = 0
    cost_usd: float = 0.0
    by_deployment: dict[str, DeploymentTally] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    #: Calls made again to the deployment whose call just failed.
    retries: int = 0
    #: Calls moved to another deployment after one failed.
    failovers: int = 0
    failed_by_class: Counter[str] = field(default_factory=Counter)
    #: Times a submit or wait found Redis away and tried again.
    redis_retries: int = 0

    @property
    def done(self) -> int:
        return self.succeeded + self.failed

    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def rate(self) -> float:
        elapsed = self.elapsed_s()
        return self.done / elapsed if elapsed > 0 else 0.0

    def count(self, result: CompletionResult) -> None:
        if result.state is JobState.SUCCEEDED:
            self.succeeded += 1
        else:
            self.failed += 1
            error_class = result.error.error_class.value if result.error else "internal"
            self.failed_by_class[error_class] += 1
        for before, call in pairwise(result.provider_calls):
            if before.outcome == "ok":
                continue  # a run after a lost worker, not a retry
            if call.deployment == before.deployment:
                self.retries += 1
            else:
                self.failovers += 1
        self.cost_usd += result.cost_usd or 0.0
        if result.deployment is None:
            return
        tally = self.by_deployment.setdefault(result.deployment, DeploymentTally())
        tally.jobs += 1
        tally.cost_usd += result.cost_usd or 0.0
        if result.usage is not None:
            tally.prompt_tokens += result.usage.prompt_tokens
            tally.completion_tokens += result.usage.completion_tokens
        served = [a for a in result.attempts if a.outcome == "ok"]
        if served:
            tally.latencies_ms.append(served[-1].latency_ms)


@dataclass(frozen=True)
class BatchOutcome:
    plan: BatchPlan
    tally: BatchTally
    output: Path
    errors: Path

    @property
    def clean(self) -> bool:
        """Every line is in the output: none failed, now or before, none invalid."""
        return self.tally.failed == 0 and self.plan.failed_before == 0 and not self.plan.problems


def summary_table(outcome: BatchOutcome) -> Table:
    """Per deployment that served this run's jobs: jobs, tokens, cost, p50 latency."""
    table = Table(title="This run, by deployment")
    for column in ("deployment", "jobs", "prompt tok", "completion tok", "cost $", "p50 ms"):
        table.add_column(column, justify="left" if column == "deployment" else "right")
    for name, tally in sorted(outcome.tally.by_deployment.items()):
        table.add_row(
            escape(name),
            str(tally.jobs),
            str(tally.prompt_tokens),
            str(tally.completion_tokens),
            f"{tally.cost_usd:.4f}",
            f"{tally.p50_ms:.0f}" if tally.p50_ms is not None else "-",
        )
    return table


def summary_line(outcome: BatchOutcome) -> str:
    """Two lines: what became of the input's lines; then how the run went."""
    t, plan = outcome.tally, outcome.plan
    by_class = ", ".join(f"{name} {n}" for name, n in sorted(t.failed_by_class.items()))
    return (
        f"{plan.lines} lines: {t.succeeded} succeeded, {t.failed} failed"
        f" (in {outcome.errors.name}), {plan.done_before} done before"
        f" ({plan.failed_before} of them failed), {len(plan.problems)} invalid; ${t.cost_usd:.4f}\n"
        f"{t.elapsed_s():.1f} s; {t.retries} retries, {t.failovers} failovers"
        f"; failed by class: {by_class or 'none'}"
        + (f"; Redis away, tried again {t.redis_retries} time(s)" if t.redis_retries else "")
    )
