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
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(timeout=90)
    assert not [pid for pid in children if alive(pid)], "Ctrl-C stops every process it started"
    with redis.Redis.from_url(redis_url) as client:
        delete_namespace(client, exports["TURNOUT_NAMESPACE"])
