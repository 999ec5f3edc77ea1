"""Rotating and revoking a store-backed key under a steady load: how fast the fleet follows.

A simulator that takes any key and counts calls per key (by fingerprint), worker processes on a
config whose one deployment pools an environment key and ``store:rotating``, and a steady load
of jobs. Each try stores a value, rotates it to a new one (timed from the write to the first call
the simulator sees with the new value) and revokes that (timed from the write to the last call
with it; a call that arrives after every worker confirmed must have been in flight). The
integration test (tests/integration/test_key_store.py) asserts on a few tries;
``python -m ops.bench keys-rotation`` reports medians over 20.
"""

from __future__ import annotations

import base64
import os
import secrets
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import yaml

from ops.simulator import OpenAISimulator
from ops.simulator.base import key_fingerprint
from ops.simulator.server import ServerThread
from ops.stack import WORKER_READY, ChildProcess, stop_all, worker_command
from producers.client import Client
from routing.keys import Keys
from routing.models import JobState
from routing.settings import CoreSettings
from workers.key_crypto import Keyring, KeyStoreError, MasterKey
from workers.key_store import KeyStore

STORED_NAME = "rotating"
ENV_KEY_VAR = "ROTATION_ENV_KEY"
#: Where the pool's stored key lives: the route a rotation or a revoke changes.
STORE_ROUTE = f"pool/store:{STORED_NAME}"


def new_master_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def new_api_key(tag: str = "rot") -> str:
    return f"sk-{tag}-{secrets.token_urlsafe(24)}"


@dataclass
class RotationStack:
    sim: OpenAISimulator
    server: ServerThread
    env: dict[str, str]
    store: KeyStore
    workers: list[ChildProcess]
    workdir: Path
    settings: CoreSettings

    def calls_with(self, value: str) -> dict[str, float] | None:
        seen = self.sim.state.stats.key_calls.get(key_fingerprint(value))
        return dict(seen) if seen else None

    def wait_for_calls_with(self, value: str, timeout_s: float = 15.0) -> dict[str, float]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            seen = self.calls_with(value)
            if seen:
                return seen
            time.sleep(0.005)
        raise TimeoutError(f"no call carried the new key within {timeout_s:g} s")


def write_rotation_config(path: Path, base_url: str, *, env_var: str = ENV_KEY_VAR) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "deployments": [
                    {
                        "id": "pool",
                        "provider": "openai",
                        "model": "sim-model",
                        "base_url": base_url,
                        "api_key_env": env_var,
                        "api_key": f"store:{STORED_NAME}",
                        "input_cost_per_mtok": 0.5,
                        "output_cost_per_mtok": 1.5,
                    }
                ],
                "policies": {
                    "default": {
                        "targets": ["pool"],
                        "attempt_timeout_s": 10,
                        "deadline_s": 30,
                        "retries_per_target": 2,
                        "backoff_base_s": 0.05,
                    }
                },
            }
        )
    )
    return path


@contextmanager
def rotation_stack(
    redis_url: str,
    namespace: str,
    workdir: Path,
    *,
    workers: int = 3,
    concurrency: int = 4,
    latency_ms: int = 20,
    extra_env: dict[str, str] | None = None,
) -> Iterator[RotationStack]:
    sim = OpenAISimulator(name="pool", api_key=None)
    sim.state.faults = sim.state.faults.updated({"latency_ms": latency_ms})
    server = ServerThread(sim).start()
    master = new_master_key()
    config = write_rotation_config(workdir / "turnout.yaml", f"{server.url}/v1")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TURNOUT_", "REDIS_URL"))},
        "REDIS_URL": redis_url,
        "TURNOUT_NAMESPACE": namespace,
        "TURNOUT_CONFIG": str(config),
        "TURNOUT_ENCRYPTION_KEY": master,
        ENV_KEY_VAR: new_api_key("env"),
        **(extra_env or {}),
    }
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    store = KeyStore(client, Keys(namespace), Keyring(MasterKey.parse(master, "bench")))
    processes: list[ChildProcess] = []
    try:
        for n in range(workers):
            command = worker_command(
                concurrency=concurrency,
                loglevel="info",
                hostname=f"rot{n}-{namespace}@%h",
                heartbeat=False,
            )
            processes.append(
                ChildProcess(f"worker-{n}", command, env=env, log_dir=workdir, grace_s=30)
            )
        for process in processes:
            process.wait_for_log(WORKER_READY, timeout_s=60, what="ready")
        settings = CoreSettings.model_validate(
            {k: v for k, v in env.items() if k.startswith(("TURNOUT_", "REDIS_URL"))}
        )
        yield RotationStack(sim, server, env, store, processes, workdir, settings)
    finally:
        stop_all(processes)
        server.stop()
        client.close()


@dataclass
class SteadyLoad:
    """Jobs submitted and waited for, by a few threads, each pausing between its jobs."""

    settings: CoreSettings
    threads: int = 3
    pause_s: float = 0.02
    states: list[JobState] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _running: list[threading.Thread] = field(default_factory=list)

    def start(self) -> SteadyLoad:
        for n in range(self.threads):
            thread = threading.Thread(target=self._run, args=(n,), daemon=True)
            thread.start()
            self._running.append(thread)
        return self

    def _run(self, n: int) -> None:
        with Client(settings=self.settings) as client:
            count = 0
            while not self._stop.is_set():
                count += 1
                try:
                    request = {
                        "messages": [{"role": "user", "content": f"load {n}-{count}"}],
                        "max_tokens": 16,
                    }
                    result = client.submit(request).wait(timeout=60)
                    self.states.append(result.state)
                    if result.state is not JobState.SUCCEEDED and result.error is not None:
                        self.errors.append(result.error.message)
                except Exception as exc:  # counted, never silently lost
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                self._stop.wait(self.pause_s)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._running:
            thread.join(timeout=90)

    @property
    def failed(self) -> int:
        return sum(1 for s in self.states if s is not JobState.SUCCEEDED)


@dataclass(frozen=True)
class Try:
    """One try's timings, seconds from the store write."""

    #: to every worker process confirming the rotation
    rotate_confirmed_s: float
    #: to the first call the simulator saw with the new value
    rotate_first_new_s: float
    #: to every worker process confirming the revoke
    revoke_confirmed_s: float
    #: to the last call with the revoked value (negative: none came after the write)
    revoke_last_old_s: float
    #: calls with the revoked value arriving after every worker confirmed (in flight then)
    old_after_confirmed: int
    #: the latest of those after the confirmation, seconds
    old_after_confirmed_s: float


def one_try(stack: RotationStack, *, settle_s: float = 1.5, grace_s: float = 30.0) -> Try:
    """Set (or set again), rotate, revoke: the store write, then what the simulator saw."""
    store = stack.store
    first = new_api_key("a")
    try:
        version = store.set(STORED_NAME, first)
    except KeyStoreError:  # a live value left by an earlier run: replace it
        version = store.rotate(STORED_NAME, first, grace_s=0)
    store.wait_for_workers(version, timeout_s=10)
    stack.wait_for_calls_with(first)

    second = new_api_key("b")
    started = time.time()
    version = store.rotate(STORED_NAME, second, grace_s=grace_s)
    reach = store.wait_for_workers(version, timeout_s=10)
    rotate_confirmed = time.time() - started
    if not reach.complete:
        raise RuntimeError(f"rotation reached {reach.confirmed} of {reach.alive} processes")
    first_new = stack.wait_for_calls_with(second)["first_at"] - started

    started = time.time()
    version = store.revoke(STORED_NAME)
    reach = store.wait_for_workers(version, timeout_s=10)
    confirmed_at = time.time()
    if not reach.complete:
        raise RuntimeError(f"revoke reached {reach.confirmed} of {reach.alive} processes")
    at_confirmation = stack.calls_with(second) or {"calls": 0, "last_at": 0.0}
    time.sleep(settle_s)
    after = stack.calls_with(second) or {"calls": 0, "last_at": 0.0}
    late = int(after["calls"] - at_confirmation["calls"])
    return Try(
        rotate_confirmed,
        first_new,
        confirmed_at - started,
        after["last_at"] - started,
        late + _arrived_after(at_confirmation, confirmed_at),
        max(0.0, after["last_at"] - confirmed_at),
    )


def _arrived_after(seen: dict[str, float], at: float) -> int:
    """1 when the count read at ``at`` already includes a call that arrived after it."""
    return 1 if seen.get("last_at", 0.0) > at else 0


def summary(tries: list[Try]) -> dict[str, Any]:
    def median_ms(values: list[float]) -> float:
        return round(statistics.median(values) * 1000, 1)

    return {
        "tries": len(tries),
        "rotate_to_first_new_call_ms": median_ms([t.rotate_first_new_s for t in tries]),
        "rotate_confirmed_ms": median_ms([t.rotate_confirmed_s for t in tries]),
        "revoke_to_last_old_call_ms": median_ms([t.revoke_last_old_s for t in tries]),
        "revoke_confirmed_ms": median_ms([t.revoke_confirmed_s for t in tries]),
        "old_calls_after_confirmation": sum(t.old_after_confirmed for t in tries),
        "max_old_after_confirmation_ms": round(
            max(t.old_after_confirmed_s for t in tries) * 1000, 1
        ),
    }
