"""A working turnout inside a test suite: ``with turnout_testing() as stack:``.

    from ops.testing import turnout_testing

    with turnout_testing() as stack:              # Redis, simulators, a worker: all running
        result = stack.client.complete("Hello")   # served by the simulated "primary"
        stack.faults("primary", fail_rate=1.0)    # break a provider, see the failover

What runs, all inside the calling process except Redis, and all stopped on exit:
  * Redis: the one at REDIS_URL when it answers (as ``./dev test`` provides), else an embedded
    redis-server (``ops.embedded_redis``); a namespace of its own either way, deleted on exit;
  * simulated OpenAI-protocol providers (``ops.simulator``), one per name, on free 127.0.0.1
    ports, each a deployment of the config, the policy ``default`` over them in order;
  * a real Celery worker on a thread (``celery.contrib.testing.worker.start_worker``) running
    ``turnout.run_job`` through ``WorkerRuntime``: the path a deployed worker runs, breaker and
    failover included, not a stand-in for it;
  * this process's environment (REDIS_URL, TURNOUT_CONFIG, TURNOUT_NAMESPACE, the simulators'
    keys) pointing at the stack, so an app that builds ``Client()`` from the environment, as
    a deployed one does, finds it. Every other TURNOUT_* variable is unset meanwhile; the
    environment is put back on exit.

Why here, and not ``producers.testing``: a working turnout needs a worker and simulators, and
producers may import neither (the import-linter contract: ops > producers | workers > routing).
ops is the layer allowed to import both, so the switch lives in ops and is turnout's documented
testing entry point. The spirit is stamina's ``set_testing`` and dramatiq's ``StubBroker``: one
switch, no process started by hand. One stack at a time per process (the worker app and runtime
of a process are one each).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import yaml
from celery.contrib.testing.worker import start_worker

from ops.embedded_redis import EmbeddedRedis, redis_answers
from ops.redis_namespace import delete_namespace, forget_routes, job_keys, queue_length
from ops.simulator import OpenAISimulator
from ops.simulator.server import ServerThread
from producers.client import Client
from routing.keys import Keys
from routing.settings import CoreSettings
from workers.redaction import RedactingFilter, Redactor

#: The policy ``default`` the stack's config defines: short, so a broken provider fails a test
#: in seconds, not minutes (the same values the integration tests run with).
DEFAULT_POLICY: dict[str, Any] = {
    "attempt_timeout_s": 6,
    "deadline_s": 8,
    "retries_per_target": 1,
    "backoff_base_s": 0.05,
}
#: Threads of the in-process worker (jobs it runs at once).
WORKER_THREADS = 8


@dataclass
class SimulatedProvider:
    """One simulated provider of the stack, read and broken in-process (no HTTP round trip)."""

    name: str
    simulator: OpenAISimulator
    server: ServerThread
    key_env: str
    key: str

    @property
    def base_url(self) -> str:
        return f"{self.server.url}/v1"

    def faults(self, **changes: Any) -> None:
        """Change this provider's faults (``ops.simulator.faults.Faults``: fail_rate,
        fail_status, latency_ms, retry_after_s, hang, malformed, down)."""
        state = self.simulator.state
        state.faults = state.faults.updated(changes)

    def stats(self) -> dict[str, Any]:
        return self.simulator.state.stats.as_dict()

    def chat_requests(self) -> int:
        return self.simulator.state.stats.chat_requests

    def reset(self) -> None:
        self.simulator.state.reset()


@dataclass
class TestingStack:
    """What ``turnout_testing`` yields: a client on the stack, its settings and providers."""

    __test__ = False  # not a pytest test class, whatever its name

    settings: CoreSettings
    config_path: Path
    client: Client
    providers: dict[str, SimulatedProvider]
    env: dict[str, str] = field(default_factory=dict)

    @property
    def namespace(self) -> str:
        return self.settings.namespace

    def provider(self, name: str) -> SimulatedProvider:
        return self.providers[name]

    def faults(self, provider: str, **changes: Any) -> None:
        """Break (or mend) one simulated provider: ``stack.faults("primary", fail_rate=1)``."""
        self.providers[provider].faults(**changes)

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.settings.redis_url, decode_responses=True)

    def job_keys(self) -> list[str]:
        """The stack's job records (a test asserts "nothing was enqueued" with these)."""
        with self.redis() as client:
            return job_keys(client, Keys(self.namespace))

    def queue_length(self) -> int:
        """Messages waiting in the jobs queue, not yet taken by the worker."""
        with self.redis() as client:
            return queue_length(client, Keys(self.namespace))

    def reset(self) -> None:
        """Between tests: every provider mended with its stats cleared, and every breaker,
        latency and rate bucket forgotten (each test starts closed)."""
        for provider in self.providers.values():
            provider.reset()
        with self.redis() as client:
            forget_routes(client, Keys(self.namespace))


def stack_config(providers: Sequence[SimulatedProvider], policy: Mapping[str, Any]) -> str:
    """The YAML config: one openai-protocol deployment per provider, ``default`` over all."""
    config = {
        "deployments": [
            {
                "id": p.name,
                "provider": "openai",
                "model": "sim-model",
                "base_url": p.base_url,
                "api_key_env": p.key_env,
                "input_cost_per_mtok": 0.5,
                "output_cost_per_mtok": 1.5,
            }
            for p in providers
        ],
        "policies": {
            "default": {"targets": [p.name for p in providers], **DEFAULT_POLICY, **policy}
        },
    }
    return yaml.safe_dump(config)


@contextlib.contextmanager
def turnout_testing(
    *,
    providers: Sequence[str] = ("primary", "secondary"),
    policy: Mapping[str, Any] | None = None,
    redis_url: str | None = None,
) -> Iterator[TestingStack]:
    """Run a whole turnout for the ``with`` block; see the module docstring.

    ``providers`` names the simulated deployments, in the order ``default`` tries them;
    ``policy`` overrides fields of ``default``; ``redis_url`` forces a Redis (else REDIS_URL
    when it answers, else an embedded one).
    """
    with contextlib.ExitStack() as stack:
        url = redis_url or os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
        if redis_url is None and not redis_answers(url):
            url = stack.enter_context(EmbeddedRedis()).url
        namespace = f"turnout-test-{uuid.uuid4().hex[:10]}"
        stack.callback(_delete_namespace, url, namespace)

        sims = [stack.enter_context(_simulated(name)) for name in providers]
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="turnout-")))
        config_path = directory / "turnout.yaml"
        config_path.write_text(stack_config(sims, policy or {}))

        env = {
            "REDIS_URL": url,
            "TURNOUT_NAMESPACE": namespace,
            "TURNOUT_CONFIG": str(config_path),
            "TURNOUT_CONCURRENCY": str(WORKER_THREADS),
            **{sim.key_env: sim.key for sim in sims},
        }
        stack.enter_context(_environment(env))
        settings = CoreSettings()
        stack.enter_context(_worker())
        client = stack.enter_context(Client(settings=settings))
        yield TestingStack(settings, config_path, client, {s.name: s for s in sims}, env)


@contextlib.contextmanager
def _simulated(name: str) -> Iterator[SimulatedProvider]:
    key = f"sim-{name}-{uuid.uuid4().hex}"
    simulator = OpenAISimulator(name=name, api_key=key)
    with ServerThread(simulator) as server:
        key_env = "TURNOUT_TESTING_KEY_" + name.upper().replace("-", "_")
        yield SimulatedProvider(name, simulator, server, key_env, key)


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """This process's environment with only ``values`` of turnout's, put back afterwards."""
    saved = dict(os.environ)
    for name in [n for n in os.environ if n.startswith("TURNOUT_") or n == "REDIS_URL"]:
        del os.environ[name]
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def _worker() -> Iterator[None]:
    """A Celery worker on a thread, on the worker app and a runtime built from the environment
    the stack has set (the settings and credentials a deployed worker would read)."""
    from workers import app as worker_app
    from workers.log_setup import known_secrets
    from workers.runtime import WorkerRuntime, install_runtime
    from workers.settings import WorkerSettings

    settings = WorkerSettings()
    # The caller's logging stays the caller's (the worker quiets httpx and httpcore while it
    # runs; their levels come back on exit); Celery's soft shutdown would hold exit 30 s.
    quieted = {name: logging.getLogger(name).level for name in ("httpx", "httpcore")}
    replaced = worker_app.reconfigure(
        settings, worker_hijack_root_logger=False, worker_soft_shutdown_timeout=0.0
    )
    previous = install_runtime(WorkerRuntime.build(settings))
    redacting = _redacting_root_handlers(Redactor(known_secrets(settings)))
    try:
        with start_worker(
            worker_app.app,
            pool="threads",
            concurrency=WORKER_THREADS,
            perform_ping_check=False,
            loglevel="WARNING",
            shutdown_timeout=30,
        ):
            yield
    finally:
        runtime = install_runtime(previous)
        if runtime is not None:
            runtime.close()
        for name, level in quieted.items():
            logging.getLogger(name).setLevel(level)
        for handler, added in redacting:
            handler.removeFilter(added)
        worker_app.restore(replaced)


def _redacting_root_handlers(redactor: Redactor) -> list[tuple[logging.Handler, RedactingFilter]]:
    """The worker runs in the caller's process, on the caller's logging: while it runs, what
    it logs through the root handlers is scrubbed as a worker's own log would be (a deployed
    worker installs this when Celery sets its logging up, which an embedded one skips)."""
    added = []
    for handler in logging.getLogger().handlers:
        scrub = RedactingFilter(redactor)
        handler.addFilter(scrub)
        added.append((handler, scrub))
    return added


def _delete_namespace(url: str, namespace: str) -> None:
    with contextlib.suppress(redis.RedisError), redis.Redis.from_url(url) as client:
        delete_namespace(client, namespace)
