"""The local stack behind ``turnout up`` and the demo: Redis, simulated providers, a worker,
beat and Flower, started as child processes and stopped by their PIDs.

It needs no API key and no Redis: it uses REDIS_URL when something answers there and an
embedded redis-server otherwise; the simulators get generated keys, which are handed to the
worker through its environment and never printed.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import yaml

from ops.embedded_redis import EmbeddedRedis, redis_answers
from ops.simulator.server import LOOPBACK, free_port
from routing.settings import CoreSettings


def flower_args(port: int, user: str, password: str) -> list[str]:
    """Flower's arguments after ``celery -A workers.app``: the stack's broker, loopback only,
    behind basic auth (the integration test starts it with these very arguments)."""
    return ["flower", f"--address={LOOPBACK}", f"--port={port}", f"--basic-auth={user}:{password}"]


@dataclass(frozen=True)
class SimulatorSpec:
    """A simulated provider and the deployment that points at it."""

    name: str
    latency_ms: float = 200.0
    model: str = "sim-model"
    port: int = 0

    @property
    def key_env(self) -> str:
        return f"TURNOUT_SIM_{self.name.upper().replace('-', '_')}_KEY"


DEMO_SIMULATORS = (SimulatorSpec("sim-primary"), SimulatorSpec("sim-secondary"))


@dataclass
class _Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes] = field(repr=False)


class LocalStack:
    def __init__(
        self,
        *,
        simulators: tuple[SimulatorSpec, ...] = DEMO_SIMULATORS,
        namespace: str | None = None,
        worker_concurrency: int = 8,
        beat: bool = True,
        flower: bool = True,
        flower_port: int | None = None,
        workdir: Path | None = None,
        backoff_base_s: float = 0.2,
    ) -> None:
        self.settings = CoreSettings()
        self.namespace = namespace or f"turnout-{secrets.token_hex(3)}"
        self.simulators = tuple(
            SimulatorSpec(s.name, s.latency_ms, s.model, s.port or free_port()) for s in simulators
        )
        self.worker_concurrency = worker_concurrency
        self.with_beat = beat
        self.with_flower = flower
        self.flower_port = flower_port or free_port()
        self.flower_user = "turnout"
        self.flower_password = secrets.token_urlsafe(12)
        self.backoff_base_s = backoff_base_s
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="turnout-stack-"))
        self.redis_url = self.settings.redis_url
        self.config_path = self.workdir / "turnout.yaml"
        self._keys = {s.name: f"sim-{secrets.token_urlsafe(24)}" for s in self.simulators}
        self._redis: EmbeddedRedis | None = None
        self._children: dict[str, _Child] = {}

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> LocalStack:
        try:
            self._start_redis()
            for sim in self.simulators:
                self._start_simulator(sim)
            self._write_config()
            self._spawn(
                "worker",
                [
                    "worker",
                    "-P",
                    "threads",
                    "-c",
                    str(self.worker_concurrency),
                    "-E",
                    "-l",
                    "info",
                    "-n",
                    f"{self.namespace}@%h",
                    "--without-mingle",
                    "--without-gossip",
                ],
            )
            if self.with_beat:
                self._spawn(
                    "beat", ["beat", "-l", "info", "-s", str(self.workdir / "beat-schedule")]
                )
            if self.with_flower:
                self._spawn(
                    "flower", flower_args(self.flower_port, self.flower_user, self.flower_password)
                )
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for name in reversed(list(self._children)):
            self._stop_child(name)
        if self._redis is not None:
            self._redis.stop()
            self._redis = None

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # --- what callers use ---------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        """The environment of the stack's processes (simulator keys included: never print it)."""
        env = dict(os.environ)
        env.update(self.public_env())
        env.update({sim.key_env: self._keys[sim.name] for sim in self.simulators})
        return env

    def public_env(self) -> dict[str, str]:
        """What a shell needs to use this stack with ``turnout submit``; holds no key."""
        return {
            "REDIS_URL": self.redis_url,
            "TURNOUT_CONFIG": str(self.config_path),
            "TURNOUT_NAMESPACE": self.namespace,
        }

    def client_settings(self) -> CoreSettings:
        return CoreSettings(
            REDIS_URL=self.redis_url,
            TURNOUT_CONFIG=self.config_path,
            TURNOUT_NAMESPACE=self.namespace,
        )

    def simulator_url(self, name: str) -> str:
        sim = next(s for s in self.simulators if s.name == name)
        return f"http://{LOOPBACK}:{sim.port}"

    def kill_simulator(self, name: str) -> None:
        """Kill a simulated provider outright: its port refuses connections from now on."""
        self._stop_child(name, sig=signal.SIGKILL)

    def wait_for_worker(self, timeout_s: float = 30.0) -> None:
        """Block until the worker has consumed from its queue (its log says it is ready)."""
        child = self._children["worker"]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if child.process.poll() is not None:
                raise RuntimeError(
                    f"the worker exited; see {child.log_path}:\n{self.log_tail('worker')}"
                )
            if b"ready." in child.log_path.read_bytes():
                return
            time.sleep(0.1)
        raise RuntimeError(f"the worker was not ready after {timeout_s:g}s; see {child.log_path}")

    def log_tail(self, name: str, lines: int = 30) -> str:
        child = self._children.get(name)
        if child is None:
            return ""
        text = child.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    # --- internals ----------------------------------------------------------------------------

    def _start_redis(self) -> None:
        if redis_answers(self.redis_url):
            return
        self._redis = EmbeddedRedis().start()
        self.redis_url = self._redis.url

    def _start_simulator(self, sim: SimulatorSpec) -> None:
        self._spawn_process(
            sim.name,
            [
                sys.executable,
                "-m",
                "ops.simulator",
                "--port",
                str(sim.port),
                "--name",
                sim.name,
                "--model",
                sim.model,
                "--latency-ms",
                str(sim.latency_ms),
            ],
            env={**os.environ, "TURNOUT_SIM_API_KEY": self._keys[sim.name]},
        )
        url = f"http://{LOOPBACK}:{sim.port}/_sim/state"
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(url, timeout=0.5):
                    return
            except OSError:
                if (
                    time.monotonic() > deadline
                    or self._children[sim.name].process.poll() is not None
                ):
                    raise RuntimeError(
                        f"simulator {sim.name} did not start:\n{self.log_tail(sim.name)}"
                    ) from None
                time.sleep(0.05)

    def _write_config(self) -> None:
        deployments = [
            {
                "id": sim.name,
                "provider": "openai",
                "model": sim.model,
                "base_url": f"http://{LOOPBACK}:{sim.port}/v1",
                "api_key_env": sim.key_env,
                "input_cost_per_mtok": 0.15,
                "output_cost_per_mtok": 0.60,
            }
            for sim in self.simulators
        ]
        policy = {
            "strategy": "ordered",
            "targets": [sim.name for sim in self.simulators],
            "attempt_timeout_s": 10,
            "deadline_s": 60,
            "retries_per_target": 1,
            "backoff_base_s": self.backoff_base_s,
        }
        self.config_path.write_text(
            yaml.safe_dump({"deployments": deployments, "policies": {"default": policy}})
        )

    def _spawn(self, name: str, celery_args: list[str]) -> None:
        self._spawn_process(
            name,
            [sys.executable, "-m", "celery", "-A", "workers.app", *celery_args],
            env=self.env(),
        )

    def _spawn_process(self, name: str, argv: list[str], *, env: dict[str, str]) -> None:
        log_path = self.workdir / f"{name}.log"
        log_file = log_path.open("ab")
        process = subprocess.Popen(
            argv, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
        self._children[name] = _Child(name, process, log_path, log_file)

    def _stop_child(self, name: str, sig: int = signal.SIGTERM) -> None:
        child = self._children.pop(name, None)
        if child is None:
            return
        if child.process.poll() is None:
            child.process.send_signal(sig)
            try:
                child.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
        child.log_file.close()
