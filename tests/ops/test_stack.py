"""The process harness on real child processes: how they stop, where they log, and the command
lines every worker, beat and Flower is started with."""

from __future__ import annotations

import os
import secrets
import signal
import sys
import time
from pathlib import Path

import pytest

from ops.stack import (
    ChildProcess,
    ChildProcessExited,
    ChildProcessNotReady,
    beat_command,
    flower_command,
    stop_all,
    worker_command,
)
from ops.stack_commands import export_lines
from routing.errors import ConfigError

IGNORES_SIGTERM = (
    "import signal, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ignoring SIGTERM', flush=True)\n"
    "time.sleep(60)\n"
)
SLEEPS = "import time\nprint('sleeping', flush=True)\ntime.sleep(60)\n"


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def option(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def reaped(pid: int) -> bool:
    """True once no process has this PID, not even a zombie waiting for its parent."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace_period_and_reaped(tmp_path):
    child = ChildProcess("stubborn", python(IGNORES_SIGTERM), log_dir=tmp_path, grace_s=0.5)
    child.wait_for_log("ignoring SIGTERM", timeout_s=20)
    started = time.monotonic()
    assert child.stop() == -9, "SIGKILLed"
    took = time.monotonic() - started
    assert 0.5 <= took < 5, f"waited out the grace period, then killed: {took:.2f}s"
    assert reaped(child.pid)


def test_a_well_behaved_child_exits_on_sigterm_within_the_grace_period(tmp_path):
    child = ChildProcess("polite", python(SLEEPS), log_dir=tmp_path, grace_s=30)
    child.wait_for_log("sleeping", timeout_s=20)
    started = time.monotonic()
    assert child.stop() == -15, "SIGTERM ended it"
    assert time.monotonic() - started < 5, "it did not wait for the grace period"
    assert reaped(child.pid)
    assert child.stop() == -15, "stopping again is a no-op"


def test_children_stopped_together_shut_down_at_the_same_time(tmp_path):
    children = [
        ChildProcess(f"stubborn-{n}", python(IGNORES_SIGTERM), log_dir=tmp_path, grace_s=1.0)
        for n in range(3)
    ]
    for child in children:
        child.wait_for_log("ignoring SIGTERM", timeout_s=20)
    started = time.monotonic()
    stop_all(children)
    took = time.monotonic() - started
    assert [child.returncode for child in children] == [-9, -9, -9]
    assert all(reaped(child.pid) for child in children)
    assert took < 2.5, f"one grace period after another would take 3 s: {took:.2f}s"


def test_kill_is_sigkill_at_once_and_reaps(tmp_path):
    child = ChildProcess("victim", python(SLEEPS), log_dir=tmp_path, grace_s=30)
    child.wait_for_log("sleeping", timeout_s=20)
    assert child.kill() == -9
    assert reaped(child.pid)


def test_leaving_the_context_stops_the_child(tmp_path):
    with ChildProcess("scoped", python(IGNORES_SIGTERM), log_dir=tmp_path, grace_s=0.2) as child:
        child.wait_for_log("ignoring SIGTERM", timeout_s=20)
    assert child.returncode == -9
    assert reaped(child.pid)


def test_a_child_dies_with_its_parent_even_a_sigkilled_one(tmp_path):
    """The parent, itself a child here, starts a grandchild through ChildProcess and is SIGKILLed
    (it cannot stop anything): the kernel's death signal stops the grandchild."""
    parent_code = (
        "import sys, time\n"
        "from ops.stack import ChildProcess\n"
        f"child = ChildProcess('orphan', [sys.executable, '-c', {SLEEPS!r}])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    parent = ChildProcess("parent", python(parent_code), env=env, log_dir=tmp_path)
    pid = int(parent.wait_until(lambda: parent.log().strip(), timeout_s=20, what="a PID"))
    # The wrapper execs the program in place (same PID) once its prctl is done: wait for that.
    parent.wait_until(
        lambda: Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[1] == b"-c",
        timeout_s=10,
        what="the wrapper to exec the program in place",
    )
    parent.kill()
    started = time.monotonic()
    while not reaped(pid) and time.monotonic() - started < 5:
        time.sleep(0.05)
    assert reaped(pid), "the grandchild outlived its SIGKILLed parent"


def test_output_goes_to_a_log_named_after_the_child_in_the_given_directory(tmp_path):
    code = "import sys; print('to stdout'); print('to stderr', file=sys.stderr)"
    child = ChildProcess("talker", python(code), log_dir=tmp_path)
    assert child.wait(timeout_s=20) == 0
    assert child.log_path == tmp_path / "talker.log"
    assert set(child.log().splitlines()) == {"to stdout", "to stderr"}


def test_waiting_on_a_child_that_exits_says_so_with_its_log(tmp_path):
    code = "import sys; print('cannot start: no key'); sys.exit(78)"
    child = ChildProcess("broken", python(code), log_dir=tmp_path)
    with pytest.raises(ChildProcessExited, match=r"broken exited \(78\)[\s\S]*no key"):
        child.wait_for_log("ready.", timeout_s=20)


def test_waiting_gives_up_at_the_timeout(tmp_path):
    with ChildProcess("slow", python(SLEEPS), log_dir=tmp_path, grace_s=5) as child:
        started = time.monotonic()
        with pytest.raises(ChildProcessNotReady, match="ready"):
            child.wait_for_log("ready.", timeout_s=0.3)
        assert time.monotonic() - started < 5


def test_a_worker_command_line_runs_this_venvs_celery_on_the_workers_app():
    argv = worker_command(concurrency=16, loglevel="warning", hostname="w1@%h")
    assert argv[:6] == [sys.executable, "-m", "celery", "-A", "workers.app", "worker"]
    assert option(argv, "-P") == "threads"
    assert option(argv, "-c") == "16"
    assert option(argv, "-l") == "warning"
    assert option(argv, "-n") == "w1@%h"
    assert {"--without-mingle", "--without-gossip"} <= set(argv)
    assert "--without-heartbeat" not in argv, "Flower sees it online"
    assert "-E" not in argv, "TURNOUT_TASK_EVENTS decides"
    assert "-Q" not in argv, "every queue the app declares: jobs and control"


def test_a_worker_consumes_the_queues_it_is_given():
    argv = worker_command(queues=["jobs", "control"], heartbeat=False)
    assert option(argv, "-Q") == "jobs,control"
    assert "--without-heartbeat" in argv


def test_two_workers_get_different_node_names():
    assert option(worker_command(), "-n") != option(worker_command(), "-n")


def test_beat_keeps_its_schedule_in_the_directory_it_is_given(tmp_path: Path):
    argv = beat_command(schedule_dir=tmp_path)
    assert argv[4:6] == ["workers.app", "beat"]
    assert option(argv, "-s") == str(tmp_path / "beat-schedule")


def test_flowers_password_travels_in_its_environment_not_its_command_line():
    password = secrets.token_urlsafe(12)
    flower = flower_command(port=5599, user="ops", password=password)
    assert flower.argv[4:6] == ["workers.app", "flower"]
    assert flower.argv[1:3] == ["-m", "ops.guarded_flower"], "turnout's guarded Flower"
    assert "--port=5599" in flower.argv
    assert "--address=127.0.0.1" in flower.argv
    assert not any(password in arg for arg in flower.argv), "ps would show it"
    assert flower.env == {"FLOWER_BASIC_AUTH": f"ops:{password}"}


@pytest.mark.parametrize("password", ["change-me", "s3cret-pass", "x" * 20, "password12345678"])
def test_a_placeholder_or_weak_flower_password_is_refused_before_anything_starts(password):
    with pytest.raises(ConfigError, match=r"secrets\.token_urlsafe") as refused:
        flower_command(port=5599, user="ops", password=password)
    assert password not in str(refused.value)


def test_a_flower_password_flower_would_split_is_refused():
    with pytest.raises(ValueError, match="cannot contain"):
        flower_command(port=5599, user="ops", password="a,b")


def test_turnout_up_prints_exports_with_a_redis_password_masked():
    lines = export_lines(
        {
            "REDIS_URL": "redis://:hunter2-0123456789@127.0.0.1:6379/0",
            "TURNOUT_CONFIG": "/tmp/turnout-stack-x/turnout.yaml",
            "TURNOUT_NAMESPACE": "turnout-1a2b3c",
        }
    )
    assert not any("hunter2" in line for line in lines)
    assert lines[0].startswith("  export REDIS_URL=redis://:****@127.0.0.1:6379/0   # ")
    assert lines[1:] == [
        "  export TURNOUT_CONFIG=/tmp/turnout-stack-x/turnout.yaml",
        "  export TURNOUT_NAMESPACE=turnout-1a2b3c",
    ], "what has no password is printed as it is, to paste"


def test_a_child_started_through_the_wrapper_gets_default_signal_dispositions(tmp_path):
    """The wrapper is Python, which ignores SIGPIPE and SIGXFSZ at start-up, and exec keeps
    ignored signals: a program such as redis-server must get its defaults back."""
    child = ChildProcess("sh", ["sh", "-c", "grep SigIgn /proc/self/status"], log_dir=tmp_path)
    assert child.wait(timeout_s=20) == 0
    ignored = int(child.log().split()[1], 16)
    for signum in (signal.SIGPIPE, signal.SIGXFSZ):
        assert not ignored & (1 << (signum - 1)), f"{signum.name} is still ignored"
