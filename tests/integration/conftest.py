"""A stack per test module: two simulated providers, a config, one real worker process."""

from __future__ import annotations

import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from ops.amqp_queues import BrokerUnreachable, delete_stack_queues, queue_depths, stack_queues
from ops.redis_namespace import delete_namespace, forget_routes, job_keys, queue_length
from producers.client import Client
from routing.keys import Keys
from routing.settings import CoreSettings
from tests.integration.harness import (
    AMQP_URL,
    BROKERS,
    Sim,
    Worker,
    broker_env,
    settings_for,
    stack_env,
    write_config,
)


@dataclass
class Stack:
    namespace: str
    env: dict[str, str]
    config: Path
    primary: Sim
    secondary: Sim
    worker: Worker | None
    redis_url: str
    broker: str = "redis"

    def settings(self) -> CoreSettings:
        return settings_for(self.env)

    def settings_keys(self) -> Keys:
        return Keys(self.namespace)

    def client(self) -> Client:
        return Client(settings=self.settings())

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url, decode_responses=True)

    def queue_length(self) -> int:
        settings = self.settings()
        if settings.broker_is_amqp:
            jobs = stack_queues(settings)[0]
            return queue_depths(settings, [jobs])[jobs]
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


def make_stack(
    redis_url: str, directory: Path, *, worker: bool, broker: str = "redis", **policy: object
) -> Stack:
    namespace = f"t-{uuid.uuid4().hex[:10]}"
    primary = Sim("primary", key=f"sim-primary-{uuid.uuid4().hex}")
    secondary = Sim("secondary", key=f"sim-secondary-{uuid.uuid4().hex}")
    config = write_config(directory / "turnout.yaml", [primary, secondary], policy=dict(policy))
    env = stack_env(redis_url, namespace, config, [primary, secondary], **broker_env(broker))
    running = Worker(env, directory / "worker.log").start() if worker else None
    return Stack(namespace, env, config, primary, secondary, running, redis_url, broker)


def tear_down(stack: Stack) -> None:
    if stack.worker is not None:
        stack.worker.stop()
    stack.primary.stop()
    stack.secondary.stop()
    with stack.redis() as client:
        delete_namespace(client, stack.namespace)
    if stack.settings().broker_is_amqp:
        delete_stack_queues(stack.settings())


@pytest.fixture(params=BROKERS)
def broker(request, namespace, redis_url):
    """Each delivery test once per broker (harness.BROKERS): the name, for broker_env. The
    RabbitMQ run leaves no queue behind; a RabbitMQ that does not answer fails the test."""
    name: str = request.param
    if name == "rabbitmq":
        settings = CoreSettings.model_validate(
            {"REDIS_URL": redis_url, "TURNOUT_NAMESPACE": namespace, **broker_env(name)}
        )
        try:
            queue_depths(settings, [])
        except BrokerUnreachable as exc:
            pytest.fail(f"the rabbitmq runs need RabbitMQ at {AMQP_URL.split('@')[-1]}: {exc}")
        yield name
        delete_stack_queues(settings)
    else:
        yield name


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
