"""The stack's processes, started one way: the Celery worker, beat and Flower command lines, and
``ChildProcess``, which starts a process with its log in a file and stops it by its PID.

``turnout up`` (ops.localstack), the benchmarks (ops.bench) and the integration tests all start
their processes here. The command lines used to be built in four places and had drifted apart
(only some workers had heartbeats, one sent task events whatever the settings said), and
"SIGTERM, wait, SIGKILL" was written out wherever a process was stopped, each with its own
mistakes (one never SIGKILLed, one never waited). Producers and workers never import this module:
it is ops, the layer on top.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, TypeVar

from ops.polling import poll_until
from routing.errors import ConfigError
from routing.secret_strength import MAKE_ONE, secret_weakness

T = TypeVar("T")

#: The Celery app of workers, beat and Flower.
CELERY_APP = "workers.app"
#: What a Celery worker logs once it consumes from its queues ("celery@host ready.").
WORKER_READY = " ready."
#: Above a worker's warm-shutdown window (30 s, routing.celery_config) plus a slow call.
WORKER_GRACE_S = 40.0
#: Beat, Flower, servers and simulators stop in well under this on SIGTERM.
DEFAULT_GRACE_S = 10.0

#: Run before a child's own program, in the child's process (``python -S -c``, so no site and no
#: turnout import: a few milliseconds): Linux's prctl(PR_SET_PDEATHSIG, SIGTERM) makes the
#: kernel send the child SIGTERM when its parent dies, however it dies (SIGKILL included), and
#: the setting survives execvp. If the parent died before the prctl, the child stops at once.
#: A wrapper rather than a ``preexec_fn``: that runs Python between fork and exec, which can
#: deadlock in a parent with threads (rich's spinner is one).
_DIE_WITH_PARENT = (
    "import ctypes, os, signal, sys\n"
    "if ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0) != 0:\n"
    "    sys.exit('cannot ask the kernel to stop this child with its parent (prctl failed)')\n"
    "if os.getppid() != int(sys.argv[1]): sys.exit(143)\n"
    # Python's start-up ignores these two and exec keeps ignored signals: the program (say
    # redis-server) gets its defaults back, as if started directly.
    "signal.signal(signal.SIGPIPE, signal.SIG_DFL)\n"
    "signal.signal(signal.SIGXFSZ, signal.SIG_DFL)\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)


def dying_with_parent(argv: Sequence[str]) -> list[str]:
    """``argv``, run so that the kernel sends it SIGTERM when this process dies (Linux only:
    elsewhere ``argv`` unchanged). The PID stays the child's: the wrapper execs it.

    The kernel watches the *thread* that started the child: start children from a thread that
    lives as long as they should (the main thread, as ``turnout up`` does)."""
    if not sys.platform.startswith("linux") or shutil.which(argv[0]) is None:
        return list(argv)  # a missing program stays Popen's FileNotFoundError, in the parent
    return [sys.executable, "-S", "-c", _DIE_WITH_PARENT, str(os.getpid()), *argv]


def celery_command(subcommand: str, *args: str, app: str = CELERY_APP) -> list[str]:
    """``celery -A app subcommand ...`` run by this interpreter (so by this venv's Celery)."""
    return [sys.executable, "-m", "celery", "-A", app, subcommand, *args]


def worker_command(
    *,
    app: str = CELERY_APP,
    pool: str = "threads",
    concurrency: int = 8,
    queues: Sequence[str] = (),
    loglevel: str = "info",
    hostname: str | None = None,
    heartbeat: bool = True,
) -> list[str]:
    """A Celery worker's command line.

    ``queues`` empty consumes every queue the app declares (each lane's and the control queue
    of beat's tasks, routing.celery_config): name them only to leave one out (a worker of one
    lane: routing.lanes.worker_queues). ``hostname``
    defaults to a fresh unique node name, so two workers on one host never share one. Task
    events follow TURNOUT_TASK_EVENTS (no ``-E`` here that would override it; off, they are on
    while a Flower asks: workers.event_switch). Mingle and gossip
    are off: they synchronise workers' in-memory state, and turnout keeps its state in Redis.
    ``heartbeat`` is how Flower sees a worker online; workers nobody watches can drop it.
    """
    argv = [
        "-P",
        pool,
        "-c",
        str(concurrency),
        "-l",
        loglevel,
        "-n",
        hostname or f"worker-{secrets.token_hex(4)}@%h",
        "--without-mingle",
        "--without-gossip",
    ]
    if queues:
        argv += ["-Q", ",".join(queues)]
    if not heartbeat:
        argv.append("--without-heartbeat")
    return celery_command("worker", *argv, app=app)


def beat_command(*, schedule_dir: Path, app: str = CELERY_APP, loglevel: str = "info") -> list[str]:
    """Celery beat's command line, its schedule file in ``schedule_dir`` (one directory per beat:
    two beats never share a schedule file)."""
    return celery_command(
        "beat", "-l", loglevel, "-s", str(schedule_dir / "beat-schedule"), app=app
    )


@dataclass(frozen=True)
class FlowerCommand:
    """Flower's command line and what its environment must add: the basic-auth credentials
    travel in FLOWER_BASIC_AUTH (which Flower reads), never in argv, where ``ps`` shows them to
    every user of the machine."""

    argv: list[str]
    env: dict[str, str]


def flower_command(
    *, port: int, user: str, password: str, address: str = "127.0.0.1", app: str = CELERY_APP
) -> FlowerCommand:
    """turnout's Flower (ops.guarded_flower: a Host allow-list, credentials on every page) on
    the stack's broker, on ``address`` only (loopback unless told), behind basic auth.
    Flower splits FLOWER_BASIC_AUTH at commas, so the password must not hold one; a weak one
    is a ConfigError here, before anything starts (the launcher would refuse it too)."""
    if "," in user or "," in password or ":" in user:
        raise ValueError("Flower's basic-auth user and password cannot contain ',' (nor ':')")
    if weakness := secret_weakness(password):
        raise ConfigError(f"Flower's password {weakness}; fix: {MAKE_ONE}")
    argv = [
        sys.executable,
        "-m",
        "ops.guarded_flower",
        "-A",
        app,
        "flower",
        f"--address={address}",
        f"--port={port}",
    ]
    return FlowerCommand(argv, {"FLOWER_BASIC_AUTH": f"{user}:{password}"})


class ChildProcessNotReady(RuntimeError):
    """A child process did not become what was waited for in time."""


class ChildProcessExited(ChildProcessNotReady):
    """A child process ended while something waited for it to become ready."""


class ChildProcess:
    """A process this one started and must stop: its output goes to ``<log_dir>/<name>.log``
    (or nowhere, without a ``log_dir``), it runs in a session of its own (a Ctrl-C at the
    terminal, or the SIGHUP of a closed terminal, reaches only the parent, which stops it in
    order), it dies with its parent (``dying_with_parent``: a SIGKILLed parent leaves no
    orphan), and leaving it always reaps it.

    ``stop()`` asks (SIGTERM), waits ``grace_s``, then insists (SIGKILL); ``kill()`` insists at
    once, as a crash would. Both wait for the process, so it never lingers as a zombie.
    ``cwd``: its working directory (default: this process's).
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        log_dir: Path | None = None,
        grace_s: float = DEFAULT_GRACE_S,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self._cwd = cwd
        self.argv = list(argv)
        self.grace_s = grace_s
        self._asked_to_stop_at: float | None = None
        self.log_path = log_dir / f"{name}.log" if log_dir is not None else None
        if self.log_path is None:
            self.process = self._popen(env, subprocess.DEVNULL)
        else:
            with self.log_path.open("ab") as log:  # the child keeps its own copy of the file
                self.process = self._popen(env, log)

    def _popen(
        self, env: Mapping[str, str] | None, out: int | IO[bytes]
    ) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            dying_with_parent(self.argv),
            env=dict(env) if env is not None else None,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=self._cwd,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        """None while it runs; then its exit status (minus the signal number that ended it)."""
        return self.process.poll()

    def running(self) -> bool:
        return self.process.poll() is None

    def wait(self, timeout_s: float | None = None) -> int:
        """Its exit status once it ends (subprocess.TimeoutExpired if not within ``timeout_s``)."""
        return self.process.wait(timeout=timeout_s)

    def terminate(self) -> None:
        """SIGTERM, once: ask it to stop without waiting (``stop()`` then waits). A second
        SIGTERM is never sent: some programs read a repeated signal as "stop now"."""
        if self.process.poll() is None and self._asked_to_stop_at is None:
            self.process.send_signal(signal.SIGTERM)
            self._asked_to_stop_at = time.monotonic()

    def stop(self, grace_s: float | None = None) -> int:
        """SIGTERM, up to ``grace_s`` (default: the one given at start) from that SIGTERM to
        exit, then SIGKILL; reaped either way. Returns its exit status; stopping a stopped
        process is a no-op."""
        self.terminate()
        grace = self.grace_s if grace_s is None else grace_s
        asked_at = self._asked_to_stop_at or time.monotonic()
        try:
            return self.process.wait(timeout=max(0.0, asked_at + grace - time.monotonic()))
        except subprocess.TimeoutExpired:
            return self.kill()

    def kill(self) -> int:
        """SIGKILL now (no warm shutdown, no acks, no goodbyes), and reap it."""
        if self.process.poll() is None:
            self.process.kill()
        return self.process.wait()

    def log(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def wait_until(
        self,
        predicate: Callable[[], T | None],
        *,
        timeout_s: float,
        what: str,
        interval_s: float = 0.05,
    ) -> T:
        """``predicate``'s first truthy value while this process runs; ChildProcessExited if
        the process ends first, ChildProcessNotReady after ``timeout_s`` (with its log's tail)."""

        def answered() -> T | None:
            if found := predicate():
                return found
            if self.running():
                return None
            if found := predicate():  # it may have made it true on its way out
                return found
            raise ChildProcessExited(
                f"{self.name} exited ({self.returncode}) before {what}:\n{self.log_tail()}"
            )

        found = poll_until(answered, timeout_s=timeout_s, interval_s=interval_s)
        if found is None:
            raise ChildProcessNotReady(
                f"{self.name}: no {what} after {timeout_s:g}s:\n{self.log_tail()}"
            )
        return found

    def wait_for_log(self, text: str, *, timeout_s: float, what: str | None = None) -> None:
        """Until ``text`` appears in its log (a worker's ``WORKER_READY``, say)."""
        self.wait_until(lambda: text in self.log(), timeout_s=timeout_s, what=what or repr(text))

    def __enter__(self) -> ChildProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"ChildProcess({self.name!r}, pid={self.pid}, returncode={self.returncode})"


def stop_all(children: Sequence[ChildProcess]) -> None:
    """Stop them together: SIGTERM to each first, so their shutdowns overlap, then ``stop()``
    each in turn (its grace period, then SIGKILL)."""
    for child in children:
        child.terminate()
    for child in children:
        child.stop()
