"""``turnout batch``: a JSONL file of completions through the queue, resumable and crash-safe.

Everything is checked before anything is enqueued (duplicate custom_ids stop the run; an invalid
line is reported with its number and skipped, or stops the run with ``--strict``). Then at most
``max_in_flight`` jobs are out at once; each result is appended to its file and flushed as it
arrives. A run that dies (killed, Ctrl-C, a lost machine) is run again with the same command:
lines already written are skipped, and each remaining line submits with an idempotency key
derived from the line and the output file, so a job the dead run had submitted is waited for,
not run again. Lines go out in input order and are written in the order they finish.

For unattended runs: invalid lines go to the errors file as well as stderr; Redis going away
mid-run (a restart) is ridden out for ``--redis-patience`` seconds (producers.redis_patience)
instead of ending the run; the summary says how long the run took, how many calls were retries
or failovers, and which error classes the failures were.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from itertools import pairwise
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from producers.batch_lines import (
    BatchItem,
    LineProblem,
    as_jsonl,
    duplicate_custom_ids,
    error_line,
    idempotency_key,
    invalid_line,
    output_line,
    parse_line,
    reported_problems,
    written_lines,
)
from producers.client import Client
from producers.redis_patience import RedisPatience
from routing.errors import ErrorClass, InvalidRequest, JobNotFound
from routing.models import CompletionResult, JobError, JobState


class BatchInputError(InvalidRequest):
    """The batch cannot run at all, and nothing was enqueued: duplicate custom_ids, an invalid
    line under --strict, an output that would overwrite the input or that another run is
    writing. Input the caller must fix, hence an InvalidRequest (``turnout batch`` exits 2)."""


def errors_path(output: Path) -> Path:
    """``out.jsonl`` -> ``out.errors.jsonl``."""
    stem = output.name[: -len(".jsonl")] if output.name.endswith(".jsonl") else output.name
    return output.with_name(f"{stem}.errors.jsonl")


@dataclass(frozen=True)
class BatchPlan:
    #: Valid lines to run now, in input order.
    todo: list[BatchItem]
    problems: list[LineProblem]
    #: Valid lines an earlier run wrote to the output (succeeded).
    succeeded_before: int
    #: Valid lines an earlier run wrote to the errors file only, and not run again now.
    failed_before: int
    lines: int
    #: Invalid lines an earlier run already wrote to the errors file (not written twice).
    reported_before: frozenset[tuple[int, str]] = frozenset()

    @property
    def done_before(self) -> int:
        return self.succeeded_before + self.failed_before


def plan_batch(
    client: Client,
    input_path: Path,
    output: Path,
    *,
    policy: str | None,
    strict: bool,
    retry_failed: bool = False,
) -> BatchPlan:
    """Read and check the whole input, and what earlier runs wrote; enqueue nothing. Lines in
    the output are done; lines only in the errors file are done too, unless ``retry_failed``."""
    same = {output.resolve(), errors_path(output).resolve()} & {input_path.resolve()}
    if same:
        raise BatchInputError(f"the output would overwrite the input {input_path}")
    parsed: list[BatchItem | LineProblem] = []
    with input_path.open("rb") as lines:
        for line_no, raw in enumerate(lines, start=1):
            try:
                # Per line, so a bad byte names its line; a BOM (Windows editors) is not JSON.
                text = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                entry: BatchItem | LineProblem = LineProblem(
                    line_no, f"not UTF-8 (byte {exc.start + 1})"
                )
            else:
                if not text.strip():
                    continue
                entry = parse_line(text, line_no, client.config, policy=policy)
            if isinstance(entry, BatchItem):
                entry = _checked(client, entry)
            if strict and isinstance(entry, LineProblem):
                raise BatchInputError(f"{entry} (--strict: nothing was enqueued)")
            parsed.append(entry)
    duplicates = duplicate_custom_ids(parsed)
    if duplicates:
        raise BatchInputError(
            "duplicate custom_id: " + "; ".join(duplicates) + " (nothing was enqueued)"
        )
    succeeded = set(dict(_read_lines(output)))
    failed = dict(_read_lines(errors_path(output)))  # the last failure of each custom_id
    items = [entry for entry in parsed if isinstance(entry, BatchItem)]
    todo, succeeded_before, failed_before = [], 0, 0
    for item in items:
        if item.custom_id in succeeded:
            succeeded_before += 1
            continue
        if item.custom_id in failed:
            if not retry_failed:
                failed_before += 1
                continue
            item = replace(item, retry_of=failed[item.custom_id])
        todo.append(item)
    return BatchPlan(
        todo=todo,
        problems=[entry for entry in parsed if isinstance(entry, LineProblem)],
        succeeded_before=succeeded_before,
        failed_before=failed_before,
        lines=len(parsed),
        reported_before=frozenset(_reported(errors_path(output))),
    )


def _checked(client: Client, item: BatchItem) -> BatchItem | LineProblem:
    """What the client would refuse at submit (an unknown target, a deadline too long)."""
    try:
        client.prepare(item.request, policy=item.route.policy, targets=_targets(item))
    except InvalidRequest as exc:
        return LineProblem(item.line_no, str(exc), item.custom_id)
    return item


def _targets(item: BatchItem) -> list[str] | None:
    return list(item.route.targets) or None


def _reported(path: Path) -> set[tuple[int, str]]:
    if not path.exists():
        return set()
    with path.open(encoding="utf-8", errors="replace") as lines:
        return reported_problems(lines)


def _read_lines(path: Path) -> list[tuple[str, str]]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8", errors="replace") as lines:
        return list(written_lines(lines))


# --- running --------------------------------------------------------------------------------


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


class BatchFiles:
    """The output and errors files. Each line goes out in one ``write`` to a file opened
    O_APPEND: a kill leaves whole lines and at most one cut-off last line, which has no newline
    and so does not count as written (producers.batch_lines.written_lines) and is cut here."""

    def __init__(self, output: Path) -> None:
        self.output = output
        self.errors = errors_path(output)
        self._out = _open_for_append(self.output)
        self._err = _open_for_append(self.errors)

    def write(self, custom_id: str, result: CompletionResult) -> None:
        if result.state is JobState.SUCCEEDED:
            _append(self._out, as_jsonl(output_line(custom_id, result)))
        else:
            _append(self._err, as_jsonl(error_line(custom_id, result)))

    def write_problem(self, problem: LineProblem) -> None:
        _append(self._err, as_jsonl(invalid_line(problem)))

    def close(self) -> None:
        for fd in (self._out, self._err):
            os.fsync(fd)
            os.close(fd)


def _open_for_append(path: Path) -> int:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    size = os.fstat(fd).st_size
    if size:
        # Cut a line a killed run left without its newline, back to the last whole line.
        with path.open("rb") as raw:
            tail_start = max(0, size - 65536)
            while True:
                raw.seek(tail_start)
                tail = raw.read(size - tail_start)
                if tail.endswith(b"\n"):
                    break
                cut = tail.rfind(b"\n")
                if cut >= 0 or tail_start == 0:
                    os.ftruncate(fd, tail_start + cut + 1)
                    break
                tail_start = max(0, tail_start - 65536)
    return fd


def _append(fd: int, line: str) -> None:
    data = line.encode("utf-8")
    while data:  # a regular file takes it in one write; a full disk raises
        written = os.write(fd, data)
        data = data[written:]


class OutputLock:
    """One run per output at a time: two would both append every line they wait for. An
    advisory lock on ``OUTPUT.lock``, which the kernel drops when its holder dies."""

    def __init__(self, output: Path) -> None:
        self.path = output.with_name(output.name + ".lock")
        self._fd: int | None = None

    def __enter__(self) -> OutputLock:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise BatchInputError(
                f"another turnout batch is writing {self.path.name[: -len('.lock')]}; "
                "wait for it, or stop it, then run this again"
            ) from None
        self._fd = fd
        return self

    def __exit__(self, *_: object) -> None:
        if self._fd is not None:
            self.path.unlink(missing_ok=True)
            os.close(self._fd)


async def run_items(
    client: Client,
    items: list[BatchItem],
    files: BatchFiles,
    *,
    max_in_flight: int,
    on_result: Callable[[CompletionResult], None],
    patience: RedisPatience | None = None,
    on_outage: Callable[[BaseException], None] = lambda exc: None,
) -> None:
    """Submit ``items`` in order with at most ``max_in_flight`` unfinished, writing each result
    as it arrives. Redis away is ridden out for ``patience``; a submit that still fails ends the
    run: what was written stays."""
    patience = patience or RedisPatience()
    identity = str(files.output.resolve())
    window = asyncio.Semaphore(max_in_flight)
    running: set[asyncio.Task[None]] = set()
    failure: list[BaseException] = []

    async def submit_and_wait(item: BatchItem) -> CompletionResult:
        # Again from the submit after Redis was away: the idempotency key finds the same job.
        request = item.request.model_copy(
            update={"idempotency_key": idempotency_key(item, identity)}
        )
        handle = await client.asubmit(request, policy=item.route.policy, targets=_targets(item))
        try:
            return await handle.wait()
        except JobNotFound as exc:  # its record is gone (evicted from Redis)
            return CompletionResult(
                job_id=handle.job_id,
                state=JobState.FAILED,
                error=JobError(
                    error_class=ErrorClass.INTERNAL,
                    message=f"{exc}; --retry-failed runs the line again as a new job",
                ),
            )

    async def one(item: BatchItem) -> None:
        try:
            result = await patience.run(lambda: submit_and_wait(item), on_outage=on_outage)
            files.write(item.custom_id, result)
            on_result(result)
        except BaseException as exc:
            failure.append(exc)
            raise
        finally:
            window.release()

    try:
        for item in items:
            await window.acquire()
            if failure:
                break
            task = asyncio.create_task(one(item))
            running.add(task)
            task.add_done_callback(running.discard)
        if running:
            await asyncio.gather(*running)
    finally:
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        await client.aclose()
    if failure:
        raise failure[0]


# --- the command ----------------------------------------------------------------------------


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


def run_batch(
    client: Client,
    input_path: Path,
    output: Path,
    *,
    policy: str | None,
    max_in_flight: int,
    strict: bool,
    retry_failed: bool,
    console: Console,
    patience: RedisPatience | None = None,
) -> BatchOutcome:
    """Plan, report the invalid lines, run the rest with a progress bar; BatchInputError when
    the input cannot run."""
    with OutputLock(output):  # one run per output at a time
        plan = plan_batch(
            client, input_path, output, policy=policy, strict=strict, retry_failed=retry_failed
        )
        for problem in plan.problems:
            console.print(
                f"[yellow]skipped[/] {escape(str(problem))}", highlight=False, soft_wrap=True
            )
        if plan.done_before:
            console.print(
                f"skipped {plan.succeeded_before} line(s) already in {escape(output.name)}"
                + (
                    f" and {plan.failed_before} in {escape(errors_path(output).name)}"
                    " (--retry-failed runs those again)"
                    if plan.failed_before
                    else ""
                ),
                highlight=False,
                soft_wrap=True,
            )
        if plan.lines == 0:
            console.print(f"{escape(input_path.name)} is empty (no lines to run)", highlight=False)
        tally = BatchTally()
        files = BatchFiles(output)
        for problem in plan.problems:
            if (problem.line_no, problem.message) not in plan.reported_before:
                files.write_problem(problem)
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("[red]{task.fields[failed]} failed[/]"),
            TextColumn("{task.fields[rate]:.1f} jobs/s"),
            TimeRemainingColumn(),
            TextColumn("${task.fields[cost]:.4f}"),
            console=console,
            transient=False,
        )
        with progress:
            bar = progress.add_task("batch", total=len(plan.todo), failed=0, rate=0.0, cost=0.0)

            def advance(result: CompletionResult) -> None:
                tally.count(result)
                progress.update(
                    bar, advance=1, failed=tally.failed, rate=tally.rate(), cost=tally.cost_usd
                )

            def redis_away(exc: BaseException) -> None:
                tally.redis_retries += 1
                if tally.redis_retries == 1 or tally.redis_retries % 100 == 0:
                    progress.console.print(
                        f"[yellow]Redis unreachable[/] ({escape(str(exc))}); trying again",
                        highlight=False,
                        soft_wrap=True,
                    )

            try:
                asyncio.run(
                    run_items(
                        client,
                        plan.todo,
                        files,
                        max_in_flight=max_in_flight,
                        on_result=advance,
                        patience=patience,
                        on_outage=redis_away,
                    )
                )
            finally:
                files.close()
        return BatchOutcome(plan, tally, files.output, files.errors)


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
