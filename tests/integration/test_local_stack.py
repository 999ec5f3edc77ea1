"""``turnout up``: the local stack starts, serves jobs and Flower, and Ctrl-C stops all of it."""

import base64
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import redis

from ops.redis_namespace import delete_namespace
from ops.simulator.server import free_port
from tests.helpers import eventually
from tests.integration.conftest import run_cli
from tests.integration.harness import Sim, key_env, write_config


def children_of(pid):
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


def cmdline(pid):
    return Path(f"/proc/{pid}/cmdline").read_bytes()


def get(url, auth=None):
    headers = {}
    if auth is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=2
        ) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_turnout_up_serves_jobs_and_flower_then_stops_everything(redis_url):
    flower_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TURNOUT_")}
    env["REDIS_URL"] = redis_url
    turnout = str(Path(sys.executable).parent / "turnout")
    up = subprocess.Popen(
        [turnout, "up", "--flower-port", str(flower_port), "--worker-concurrency", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    exports = {}
    flower_auth = None
    try:
        deadline = time.monotonic() + 90
        assert up.stdout is not None
        for line in up.stdout:
            if match := re.match(r"\s+export (\w+)=(\S+)", line):
                exports[match[1]] = match[2]
            if match := re.search(r"\(user (\S+), password (\S+)\)", line):
                flower_auth = (match[1], match[2])
            if line.startswith("Logs:"):
                break
            assert time.monotonic() < deadline, "turnout up did not come up"
        assert set(exports) == {"REDIS_URL", "TURNOUT_CONFIG", "TURNOUT_NAMESPACE"}

        done = run_cli(["submit", "--prompt", "hello", "--wait", "--json"], {**env, **exports})
        assert done.returncode == 0, done.stderr
        assert '"deployment": "sim-primary"' in done.stdout

        flower = f"http://127.0.0.1:{flower_port}"
        eventually(
            lambda: get(f"{flower}/healthcheck", flower_auth) == 200,
            timeout=deadline - time.monotonic(),
            interval=0.2,
            what="flower to answer",
        )
        assert get(f"{flower}/api/workers") == 401, "Flower's API needs the basic-auth password"
        assert get(f"{flower}/healthcheck") == 401, "and so does its health check"

        children = children_of(up.pid)
        assert len(children) >= 5, "two simulators, worker, beat, flower"
        flower_pid = next(pid for pid in children if b"ops.guarded_flower" in cmdline(pid))
        assert flower_auth is not None
        assert flower_auth[1].encode() not in cmdline(flower_pid), "ps shows no password"
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(timeout=90)
    assert not [pid for pid in children if alive(pid)], "Ctrl-C stops every process it started"
    with redis.Redis.from_url(redis_url) as client:
        delete_namespace(client, exports["TURNOUT_NAMESPACE"])


def start_up(args, env):
    """``turnout up`` with ``args``, once it has printed its exports: (process, exports)."""
    turnout = str(Path(sys.executable).parent / "turnout")
    up = subprocess.Popen(
        [turnout, "up", "--flower-port", str(free_port()), "--worker-concurrency", "2", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    exports = {}
    deadline = time.monotonic() + 90
    assert up.stdout is not None
    for line in up.stdout:
        if match := re.match(r"\s+export (\w+)=(\S+)", line):
            exports[match[1]] = match[2]
        if line.startswith("Logs:"):
            return up, exports
        assert time.monotonic() < deadline, "turnout up did not come up"
    raise AssertionError(f"turnout up exited ({up.wait()}) before it was up")


def all_gone(pids, within_s):
    eventually(
        lambda: not [pid for pid in pids if alive(pid)],
        timeout=within_s,
        interval=0.2,
        what="every child of turnout up to end",
    )
    return True


def stack_only_env(redis_url):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TURNOUT_")}
    env["REDIS_URL"] = redis_url
    return env


def test_sigterm_stops_turnout_up_and_every_child_it_started(redis_url):
    up, exports = start_up([], stack_only_env(redis_url))
    try:
        children = children_of(up.pid)
        assert len(children) == 5, "two simulators, worker, beat, flower"
        asked = time.monotonic()
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=60) == 0, "an orderly stop, as after Ctrl-C"
        took = time.monotonic() - asked
        assert took < 25, f"{took:.0f}s: a child (Flower?) waited out its grace, then SIGKILL"
        assert all_gone(children, within_s=5)
    finally:
        up.kill()
        with redis.Redis.from_url(redis_url) as client:
            delete_namespace(client, exports["TURNOUT_NAMESPACE"])


def test_up_with_a_config_runs_its_deployments_without_simulators_until_sighup(redis_url, tmp_path):
    provider = Sim("real-provider", key=f"key-{os.urandom(8).hex()}")
    config = write_config(tmp_path / "turnout.yaml", [provider])
    env = {**stack_only_env(redis_url), key_env(provider): provider.key}
    up, exports = start_up(["--config", str(config)], env)
    try:
        assert exports["TURNOUT_CONFIG"] == str(config), "the operator's file, as it is"
        children = children_of(up.pid)
        assert not [pid for pid in children if b"ops.simulator" in cmdline(pid)], "no simulator"
        assert len(children) == 3, "worker, beat, flower"
        done = run_cli(["submit", "--prompt", "hello", "--wait", "--json"], {**env, **exports})
        assert done.returncode == 0, done.stderr
        assert '"deployment": "real-provider"' in done.stdout, "with the key from its environment"
        up.send_signal(signal.SIGHUP)  # what a closing terminal sends
        assert up.wait(timeout=60) == 0
        assert all_gone(children, within_s=5)
    finally:
        up.kill()
        provider.stop()
        with redis.Redis.from_url(redis_url) as client:
            delete_namespace(client, exports["TURNOUT_NAMESPACE"])


def test_a_sigkilled_turnout_up_leaves_no_child_running(redis_url):
    up, exports = start_up([], stack_only_env(redis_url))
    try:
        children = children_of(up.pid)
        assert len(children) == 5
        up.kill()
        up.wait(timeout=10)
        assert all_gone(children, within_s=45), "each got SIGTERM from the kernel"
    finally:
        with redis.Redis.from_url(redis_url) as client:
            delete_namespace(client, exports["TURNOUT_NAMESPACE"])
