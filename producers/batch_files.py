"""Where a batch writes: its output and errors files, appended a whole line at a time, and the
lock that keeps a second run off the same output. A kill leaves only whole lines behind, which
is what lets a run again skip what is written."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from producers.batch_lines import LineProblem, as_jsonl, error_line, invalid_line, output_line
from producers.batch_plan import BatchInputError, errors_path
from routing.models import CompletionResult, JobState


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
