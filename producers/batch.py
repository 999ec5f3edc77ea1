"""``turnout batch``: a JSONL file of completions through the queue, resumable and crash-safe.

Everything is checked before anything is enqueued (duplicate custom_ids stop the run; an invalid
line is reported with its number and skipped, or stops the run with ``--strict``). Then at most
``max_in_flight`` jobs are out at once; each result is appended to its file and flushed as it
arrives. A run that dies (killed, Ctrl-C, a lost machine) is run again with the same command:
lines already written are skipped, and each remaining line submits with an idempotency key
derived from the line and the output file, so a job the dead run had submitted is waited for,
not run again. Lines go out in input order and are written in the order they finish.

For unattended runs: invalid lines go to the errors file as well as stderr; Redis going away
mid-run (a restart, a failover, a pause) is ridden out for ``--redis-patience`` seconds, 300 by
default (producers.redis_patience): the client's every submit, wait and read is tried again
with backoff, instead of ending the run; the summary says how long the run took, how many
calls were retries or failovers, and which error classes the failures were.

This module runs the lines; the steps around it live beside it: producers.batch_plan checks
the input before anything is enqueued, producers.batch_files appends the results and holds the
output's lock, producers.batch_summary counts what the run did and says it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from producers.batch_files import BatchFiles, OutputLock
from producers.batch_lines import BatchItem, idempotency_key
from producers.batch_plan import client_targets, errors_path, plan_batch
from producers.batch_summary import BatchOutcome, BatchTally
from producers.client import Client
from producers.redis_patience import RedisPatience
from routing.embeddings import EmbeddingRequest
from routing.errors import ErrorClass, JobNotFound
from routing.models import CompletionResult, JobError, JobState

#: ``--redis-patience``'s default (see producers.redis_patience for why five minutes).
BATCH_REDIS_PATIENCE_S = 300.0


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
    as it arrives. Redis away is ridden out for ``patience`` by the client (each of its Redis
    calls, ``on_outage`` told of each failure); one that still fails ends the run: what was
    written stays."""
    patience = patience or RedisPatience(
        budget_s=BATCH_REDIS_PATIENCE_S, setting="--redis-patience"
    )
    client.patience = dataclasses.replace(patience, on_outage=on_outage)
    identity = str(files.output.resolve())
    window = asyncio.Semaphore(max_in_flight)
    running: set[asyncio.Task[None]] = set()
    failure: list[BaseException] = []

    async def submit_and_wait(item: BatchItem) -> CompletionResult:
        # The idempotency key: a rerun after a crash finds the job this run submitted.
        request = item.request.model_copy(
            update={"idempotency_key": idempotency_key(item, identity)}
        )
        if isinstance(request, EmbeddingRequest):
            handle = await client.asubmit_embedding(
                request, policy=item.route.policy, targets=client_targets(item)
            )
        else:
            handle = await client.asubmit(
                request, policy=item.route.policy, targets=client_targets(item)
            )
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
            result = await submit_and_wait(item)
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
