"""``turnout worker``, ``turnout beat`` and ``turnout flower`` become the Celery processes
ops.stack builds, in place (SIGTERM reaches them directly); the root's ``--version``,
``--config`` and ``--env-file`` hold for every command."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from ops.simulator.server import free_port
from ops.stack import WORKER_READY, ChildProcess
from tests.integration.conftest import run_cli
from tests.integration.harness import Sim, key_env, stack_env, write_config

TURNOUT = str(Path(sys.executable).parent / "turnout")


def cmdline(pid: int) -> list[bytes]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")


def test_turnout_worker_becomes_a_celery_worker_that_sigterm_stops(redis_url, tmp_path):
    sim = Sim("primary", key=f"key-{secrets.token_hex(8)}")
    try:
        config = write_config(tmp_path / "turnout.yaml", [sim])
        env = stack_env(redis_url, f"t-{secrets.token_hex(5)}", config, [sim])
        argv = [TURNOUT, "worker", "--concurrency", "2", "-Q", "jobs", "--hostname", "w1@%h"]
        with ChildProcess("worker", argv, env=env, log_dir=tmp_path, grace_s=40) as worker:
            worker.wait_for_log(WORKER_READY, timeout_s=60)
            argv_now = cmdline(worker.pid)
            assert argv_now[1:5] == [b"-m", b"celery", b"-A", b"workers.app"], "execed in place"
            assert argv_now[argv_now.index(b"-c") + 1] == b"2"
            worker.terminate()
            assert worker.wait(timeout_s=30) == 0, worker.log_tail()
    finally:
        sim.stop()


def test_turnout_beat_becomes_celery_beat_with_its_schedule_in_the_given_directory(
    redis_url, tmp_path
):
    env = {**os.environ, "REDIS_URL": redis_url, "TURNOUT_NAMESPACE": "t-beat"}
    argv = [TURNOUT, "beat", "--schedule-dir", str(tmp_path / "state")]
    with ChildProcess("beat", argv, env=env, log_dir=tmp_path) as beat:
        beat.wait_for_log("beat: Starting", timeout_s=60)
        assert b"beat" in cmdline(beat.pid)
        assert list((tmp_path / "state").glob("beat-schedule*")), "its schedule file is there"
        beat.terminate()
        assert beat.wait(timeout_s=15) == 0


def test_turnout_flower_refuses_to_start_without_credentials_or_with_weak_ones(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "FLOWER_BASIC_AUTH"}
    missing = run_cli(["flower", "--port", str(free_port())], env)
    assert missing.returncode == 2
    assert "FLOWER_BASIC_AUTH is not set" in missing.stderr
    weak = run_cli(["flower"], {**env, "FLOWER_BASIC_AUTH": "admin:admin"})
    assert weak.returncode == 2
    assert "admin:admin" not in weak.stderr, "it never echoes a password"


def test_turnout_flower_keeps_its_password_out_of_ps(redis_url, tmp_path):
    password = secrets.token_urlsafe(18)
    env = {**os.environ, "REDIS_URL": redis_url, "FLOWER_BASIC_AUTH": f"ops:{password}"}
    argv = [TURNOUT, "flower", "--port", str(free_port())]
    with ChildProcess("flower", argv, env=env, log_dir=tmp_path) as flower:
        flower.wait_for_log("Visit me", timeout_s=60)
        argv_now = cmdline(flower.pid)
        assert b"ops.guarded_flower" in argv_now
        assert not [arg for arg in argv_now if password.encode() in arg], "ps would show it"
        flower.terminate()
        assert flower.wait(timeout_s=10) == 0, "SIGTERM stops Flower"


def test_version_is_the_installed_distributions():
    done = run_cli(["--version"], dict(os.environ))
    assert done.returncode == 0
    assert done.stdout.strip() == f"turnout {version('turnout')}"


def test_env_file_is_read_instead_of_dot_env(tmp_path):
    key = f"sk-{secrets.token_hex(12)}"
    (tmp_path / "ops.env").write_text(f"OPENAI_API_KEY={key}\n")
    (tmp_path / ".env").write_text("OPENAI_API_KEY=\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "TURNOUT_"))}
    env["PYTHONPATH"] = str(Path(__file__).parents[2])

    def openai_key(*root_args: str) -> object:
        done = subprocess_in(tmp_path, [*root_args, "providers", "--json"], env)
        rows = {row["name"]: row for row in json.loads(done)["providers"]}
        return rows["openai"]["key"]

    assert openai_key() is None, "./.env has no key"
    assert openai_key("--env-file", "ops.env") not in (None, ""), "the named file's key"
    assert key not in str(openai_key("--env-file", "ops.env")), "shown masked"


def test_config_names_the_config_every_command_and_its_children_read(redis_url, tmp_path):
    sim = Sim("unkeyed", key="never-set")
    try:
        config = write_config(tmp_path / "turnout.yaml", [sim])
        env = stack_env(redis_url, "t-config", tmp_path / "nowhere.yaml", [])
        # Strict: a missing key stops the worker (by default it starts without that route).
        env["TURNOUT_STRICT_CONFIG"] = "1"
        done = run_cli(["--config", str(config), "worker"], env)
        assert done.returncode == 78, "the worker read the named config and misses its key"
        assert key_env(sim) in done.stdout + done.stderr
    finally:
        sim.stop()


def subprocess_in(cwd: Path, args: list[str], env: dict[str, str]) -> str:

    done = subprocess.run(
        [TURNOUT, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout
