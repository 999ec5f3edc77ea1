"""Before a batch runs: every input line read and checked, and what earlier runs wrote.

Nothing here enqueues. A line the client would refuse is an invalid line now, not a failed job
later; duplicate custom_ids stop the run, since a resumed run could not tell their results
apart; the output and errors files say which lines are done already.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from producers.batch_lines import (
    BatchItem,
    LineProblem,
    duplicate_custom_ids,
    parse_line,
    reported_problems,
    written_lines,
)
from producers.client import Client
from routing.embeddings import EmbeddingRequest
from routing.errors import InvalidRequest


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
        if isinstance(item.request, EmbeddingRequest):
            client.prepare_embedding(
                item.request, policy=item.route.policy, targets=client_targets(item)
            )
        else:
            client.prepare(item.request, policy=item.route.policy, targets=client_targets(item))
    except InvalidRequest as exc:
        return LineProblem(item.line_no, str(exc), item.custom_id)
    return item


def client_targets(item: BatchItem) -> list[str] | None:
    """A line's explicit targets as the client takes them (None: its policy decides)."""
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
