"""Real parts for integration tests: simulators over HTTP, celery worker subprocesses, config.

Timings are shortened through configuration (visibility timeout, lease, restore sweep,
backoff), never by weakening what a test asserts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from ops.simulator import OpenAISimulator
from ops.simulator.server import ServerThread
from routing.settings import CoreSettings

#: Short enough to redeliver a killed worker's job within a test, long enough for the jobs.
FAST_DELIVERY_ENV = {
    "TURNOUT_VISIBILITY_TIMEOUT": "15",
    "TURNOUT_LEASE_S": "2",
    "TURNOUT_RESTORE_INTERVAL": "1",
    "TURNOUT_RESTORE_THROTTLE": "1",
    "TURNOUT_RECONCILE_EVERY": "1",
    "TURNOUT_REQUEUE_AFTER": "2",
}


class Sim:
    """A simulated OpenAI-compatible provider on 127.0.0.1, driven over its control endpoint."""

    def __init__(self, name: str, key: str, **faults: Any) -> None:
        self.name = name
        self.key = key
        self.app = OpenAISimulator(name=name, api_key=key)
        self.server = ServerThread(self.app).start()
        if faults:
            self.set_faults(**faults)

    @property
    def base_url(self) -> str:
        return f"{self.server.url}/v1"

    def _control(self, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            f"{self.server.url}/_sim/{path}", data=data, method="GET" if data is None else "POST"
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            result: dict[str, Any] = json.loads(response.read())
            return result

    def set_faults(self, **faults: Any) -> None:
        self._control("faults", faults)

    def reset(self) -> None:
        self._control("reset", {})

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self._control("state")["stats"]
        return stats

    def chat_requests(self) -> int:
        return int(self.stats()["chat_requests"])

    def stop(self) -> None:
        self.server.stop()


def write_config(
    path: Path,
    sims: Iterable[Sim],
    *,
    policy: dict[str, Any] | None = None,
    breaker: dict[str, Any] | None = None,
    health: dict[str, Any] | None = None,
    deployments: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """One openai-protocol deployment per simulator (``deployments`` adds fields to them by
    name), a default policy over all of them in order, and the fleet breaker's settings."""
    sims = list(sims)
    extra = deployments or {}
    config = {
        "deployments": [
            {
                "id": sim.name,
                "provider": "openai",
                "model": "sim-model",
                "base_url": sim.base_url,
                "api_key_env": key_env(sim),
                "input_cost_per_mtok": 0.5,
                "output_cost_per_mtok": 1.5,
                **extra.get(sim.name, {}),
            }
            for sim in sims
        ],
        "policies": {
            "default": {
                "targets": [sim.name for sim in sims],
                "attempt_timeout_s": 6,
                "deadline_s": 8,
                "retries_per_target": 1,
                "backoff_base_s": 0.05,
                **(policy or {}),
            }
        },
    }
    if breaker:
        config["breaker"] = breaker
    if health:
        config["health"] = health
    path.write_text(yaml.safe_dump(config))
    return path


def key_env(sim: Sim) -> str:
    return f"SIM_KEY_{sim.name.upper().replace('-', '_')}"


def stack_env(
    redis_url: str, namespace: str, config: Path, sims: Iterable[Sim], **extra: str
) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TURNOUT_", "OPENAI_", "REDIS_URL"))
    }
    env.update(FAST_DELIVERY_ENV)
    env.update(
        {
            "REDIS_URL": redis_url,
            "TURNOUT_NAMESPACE": namespace,
            "TURNOUT_CONFIG": str(config),
            **{key_env(sim): sim.key for sim in sims},
            **extra,
        }
    )
    return env


def settings_for(env: dict[str, str]) -> CoreSettings:
    """The producer's settings for a stack's environment (and nothing from this process's)."""
    return CoreSettings.model_validate(
        {k: v for k, v in env.items() if k.startswith(("TURNOUT_", "REDIS_URL"))}
    )


class Worker:
    """``celery -A workers.app worker`` as a subprocess, its log in a file."""

    def __init__(
        self, env: dict[str, str], log_path: Path, *, concurrency: int = 8, loglevel: str = "info"
    ) -> None:
        self.env = env
        self.log_path = log_path
        self.concurrency = concurrency
        self.loglevel = loglevel
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *, wait: bool = True) -> Worker:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "workers.app",
                "worker",
                "-P",
                "threads",
                "-c",
                str(self.concurrency),
                "-l",
                self.loglevel,
                "-n",
                f"w{time.monotonic_ns()}@%h",
                "--without-mingle",
                "--without-gossip",
                "--without-heartbeat",
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout_s: float = 30) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        while b" ready." not in self.log_path.read_bytes():
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited ({self.process.returncode}):\n{self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker not ready after {timeout_s}s:\n{self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no warm shutdown, no acks, no goodbyes."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Beat:
    """``celery -A workers.app beat`` as a subprocess."""

    def __init__(self, env: dict[str, str], directory: Path) -> None:
        self.env = env
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Beat:
        log = (self.directory / "beat.log").open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "workers.app",
                "beat",
                "-l",
                "info",
                "-s",
                str(self.directory / "beat-schedule"),
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)
