"""The local stack behind ``turnout up`` and the demo: Redis, simulated providers, a worker,
beat and Flower, started as child processes and stopped by their PIDs.

It needs no API key and no Redis: it uses REDIS_URL when something answers there and an
embedded redis-server otherwise; the simulators get generated keys, which are handed to the
worker through its environment and never printed. Given a ``config`` (``turnout up --config``)
it runs that file's deployments instead, with real keys from the environment and ``.env``
(the worker reads them, as any worker does), and no simulator unless asked: asked, their
deployments join the file's, so its policies can name them.
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ops.embedded_redis import EmbeddedRedis, redis_answers
from ops.simulator.server import LOOPBACK, free_port
from ops.stack import (
    WORKER_GRACE_S,
    WORKER_READY,
    ChildProcess,
    beat_command,
    flower_command,
    stop_all,
    worker_command,
)
from routing.settings import CoreSettings


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


class LocalStack:
    def __init__(
        self,
        *,
        simulators: tuple[SimulatorSpec, ...] = DEMO_SIMULATORS,
        config: Path | None = None,
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
        self.given_config = config.resolve() if config is not None else None
        self.config_path = (
            self.given_config
            if self.given_config is not None and not self.simulators
            else self.workdir / "turnout.yaml"
        )
        self._keys = {s.name: f"sim-{secrets.token_urlsafe(24)}" for s in self.simulators}
        self._redis: EmbeddedRedis | None = None
        self._children: dict[str, ChildProcess] = {}

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> LocalStack:
        try:
            self._start_redis()
            for sim in self.simulators:
                self._start_simulator(sim)
            if self.config_path != self.given_config:
                self._write_config()
            self._spawn(
                "worker",
                worker_command(
                    concurrency=self.worker_concurrency, hostname=f"{self.namespace}@%h"
                ),
                grace_s=WORKER_GRACE_S,
            )
            if self.with_beat:
                self._spawn("beat", beat_command(schedule_dir=self.workdir))
            if self.with_flower:
                flower = flower_command(
                    port=self.flower_port, user=self.flower_user, password=self.flower_password
                )
                self._spawn("flower", flower.argv, env={**self.env(), **flower.env})
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Every child at once (their shutdowns overlap: a hung one costs one grace period, not
        one each), newest first, then the embedded Redis they used."""
        children = list(reversed(self._children.values()))
        self._children.clear()
        stop_all(children)
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
        child = self._children.pop(name, None)
        if child is not None:
            child.kill()

    def wait_for_worker(self, timeout_s: float = 30.0) -> None:
        """Block until the worker has consumed from its queue (its log says it is ready);
        RuntimeError (with its log's tail) if it exits or is not ready in time."""
        self._children["worker"].wait_for_log(WORKER_READY, timeout_s=timeout_s, what="ready")

    def log_tail(self, name: str, lines: int = 30) -> str:
        child = self._children.get(name)
        return child.log_tail(lines) if child is not None else ""

    # --- internals ----------------------------------------------------------------------------

    def _start_redis(self) -> None:
        if redis_answers(self.redis_url):
            return
        self._redis = EmbeddedRedis().start()
        self.redis_url = self._redis.url

    def _start_simulator(self, sim: SimulatorSpec) -> None:
        child = self._spawn(
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
        child.wait_until(lambda: _answers(url), timeout_s=15, what="answer on its port")

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
        config: dict[str, Any] = {"deployments": deployments, "policies": {"default": policy}}
        if self.given_config is not None:  # the simulators join the operator's deployments
            config = yaml.safe_load(self.given_config.read_text()) or {}
            config["deployments"] = [*(config.get("deployments") or []), *deployments]
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    def _spawn(
        self,
        name: str,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        grace_s: float = WORKER_GRACE_S,
    ) -> ChildProcess:
        child = ChildProcess(
            name,
            argv,
            env=self.env() if env is None else env,
            log_dir=self.workdir,
            grace_s=grace_s,
        )
        self._children[name] = child
        return child


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=0.5):  # noqa: S310 (our loopback http URL)
            return True
    except OSError:
        return False
