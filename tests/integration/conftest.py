"""A stack per test module: two simulated providers, a config, one real worker process."""

from __future__ import annotations

import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from ops.redis_namespace import delete_namespace, forget_routes, job_keys, queue_length
from producers.client import Client
from routing.keys import Keys
from routing.settings import CoreSettings
from tests.integration.harness import Sim, Worker, settings_for, stack_env, write_config


@dataclass
class Stack:
    namespace: str
    env: dict[str, str]
    config: Path
    primary: Sim
    secondary: Sim
    worker: Worker | None
    redis_url: str

    def settings(self) -> CoreSettings:
        return settings_for(self.env)

    def settings_keys(self) -> Keys:
        return Keys(self.namespace)

    def client(self) -> Client:
        return Client(settings=self.settings())

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url, decode_responses=True)

    def queue_length(self) -> int:
        with self.redis() as client:
            return queue_length(client, self.settings_keys())

    def reset_routes(self) -> None:
        """Forget the fleet's breakers, latencies and rate buckets (each test starts closed)."""
        with self.redis() as client:
            forget_routes(client, self.settings_keys())

    def job_keys(self) -> list[str]:
        with self.redis() as client:
            return job_keys(client, self.settings_keys())


def run_cli(
    args: list[str], env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    turnout = Path(sys.executable).parent / "turnout"
    return subprocess.run(
        [str(turnout), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def make_stack(redis_url: str, directory: Path, *, worker: bool, **policy: object) -> Stack:
    namespace = f"t-{uuid.uuid4().hex[:10]}"
    primary = Sim("primary", key=f"sim-primary-{uuid.uuid4().hex}")
    secondary = Sim("secondary", key=f"sim-secondary-{uuid.uuid4().hex}")
    config = write_config(directory / "turnout.yaml", [primary, secondary], policy=dict(policy))
    env = stack_env(redis_url, namespace, config, [primary, secondary])
    running = Worker(env, directory / "worker.log").start() if worker else None
    return Stack(namespace, env, config, primary, secondary, running, redis_url)


def tear_down(stack: Stack) -> None:
    if stack.worker is not None:
        stack.worker.stop()
    stack.primary.stop()
    stack.secondary.stop()
    with stack.redis() as client:
        delete_namespace(client, stack.namespace)


@pytest.fixture(scope="module")
def stack(redis_url, tmp_path_factory):
    """Shared by a module's tests; the simulators are reset before each test."""
    running = make_stack(redis_url, tmp_path_factory.mktemp("stack"), worker=True)
    yield running
    tear_down(running)


@pytest.fixture
def live(stack):
    stack.primary.reset()
    stack.secondary.reset()
    stack.reset_routes()
    return stack


@pytest.fixture
def idle_stack(redis_url, tmp_path):
    """Config and simulators but no worker: whatever is enqueued stays visible."""
    stack = make_stack(redis_url, tmp_path, worker=False)
    yield stack
    tear_down(stack)
