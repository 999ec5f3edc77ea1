"""Real parts for integration tests: simulators over HTTP, celery worker subprocesses, config.

Timings are shortened through configuration (visibility timeout, lease, restore sweep,
backoff), never by weakening what a test asserts.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import redis
import yaml

from ops.amqp_queues import purge
from ops.simulator import OpenAISimulator
from ops.simulator.server import ServerThread
from ops.stack import WORKER_GRACE_S, WORKER_READY, ChildProcess, beat_command, worker_command
from routing.celery_config import queue_name
from routing.keys import Keys
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


#: The RabbitMQ the "rabbitmq" runs of the delivery tests use (this machine's; guest's vhost).
AMQP_URL = os.environ.get("TURNOUT_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
#: The brokers the delivery tests run on: Redis (routing.broker) and RabbitMQ.
BROKERS = ("redis", "rabbitmq")


def broker_env(broker: str) -> dict[str, str]:
    """The environment that puts a stack's messages on ``broker`` (one of BROKERS); its queues
    are named after the stack's namespace on either (routing.celery_config.queue_name)."""
    if broker == "rabbitmq":
        return {"TURNOUT_BROKER_URL": AMQP_URL}
    assert broker == "redis", broker
    return {}


class Sim:
    """A simulated OpenAI-compatible provider on 127.0.0.1, driven over its control endpoint.
    ``key`` None: it takes any key (and counts calls per key: ``key_calls``)."""

    def __init__(self, name: str, key: str | None, **faults: Any) -> None:
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

    def key_calls(self) -> dict[str, dict[str, float]]:
        """Chat requests per key fingerprint (ops.simulator.base.key_fingerprint)."""
        calls: dict[str, dict[str, float]] = self.stats()["key_calls"]
        return calls

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
            **{key_env(sim): sim.key for sim in sims if sim.key is not None},
            **extra,
        }
    )
    return env


def remove_queued_messages(settings: CoreSettings) -> int:
    """Take every waiting message out of the jobs queue, by hand, on whichever broker; how many
    went (a test of what recovers a job whose message was lost)."""
    keys = Keys(settings.namespace)
    if settings.broker_is_amqp:
        return purge(settings, queue_name(settings, keys.queue))
    with redis.Redis.from_url(settings.redis_url) as client:
        return int(client.delete(keys.queue_list(keys.queue)))


def settings_for(env: dict[str, str]) -> CoreSettings:
    """The producer's settings for a stack's environment (and nothing from this process's)."""
    return CoreSettings.model_validate(
        {k: v for k, v in env.items() if k.startswith(("TURNOUT_", "REDIS_URL"))}
    )


class Worker:
    """``celery -A workers.app worker`` as a subprocess (ops.stack's command line), its log in
    a file. Made first and started when the test says, so a test can start it late."""

    def __init__(
        self,
        env: dict[str, str],
        log_path: Path,
        *,
        concurrency: int = 8,
        loglevel: str = "info",
        heartbeat: bool = False,
        queues: Iterable[str] = (),
    ) -> None:
        self.env = env
        self.heartbeat = heartbeat
        self.log_path = log_path
        self.concurrency = concurrency
        self.loglevel = loglevel
        #: Empty: every queue (both lanes); routing.lanes.worker_queues for one lane's.
        self.queues = list(queues)
        self.process: ChildProcess | None = None

    def start(self, *, wait: bool = True) -> Worker:
        command = worker_command(
            concurrency=self.concurrency,
            loglevel=self.loglevel,
            hostname=f"w{time.monotonic_ns()}@%h",
            heartbeat=self.heartbeat,
            queues=self.queues,
        )
        self.process = ChildProcess(
            self.log_path.stem,
            command,
            env=self.env,
            log_dir=self.log_path.parent,
            grace_s=WORKER_GRACE_S,
        )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout_s: float = 30) -> None:
        assert self.process is not None
        self.process.wait_for_log(WORKER_READY, timeout_s=timeout_s, what="ready")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no warm shutdown, no acks, no goodbyes."""
        assert self.process is not None
        self.process.kill()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


class Beat:
    """``celery -A workers.app beat`` as a subprocess, its schedule and log in ``directory``."""

    def __init__(self, env: dict[str, str], directory: Path) -> None:
        self.env = env
        self.directory = directory
        self.process: ChildProcess | None = None

    def start(self) -> Beat:
        self.process = ChildProcess(
            "beat", beat_command(schedule_dir=self.directory), env=self.env, log_dir=self.directory
        )
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
