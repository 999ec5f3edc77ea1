"""Fencing across a real network partition: a worker cut off from Redis longer than its lease
comes back to a job another worker took over, and changes nothing but the attempt log.

The late worker runs in a network namespace of its own. It reaches a private redis-server
through one veth pair (the link that is cut: ``ip link set ... down`` on its side) and the
simulated provider through another, which stays up, so its provider call completes while
Redis is out of reach. A second worker on the host reclaims the silent worker's message
(routing.broker), claims the job once the lease has lapsed, and finishes it. Then the link comes
back: the late worker's finish is refused (routing/scripts/finish_job.lua) whether the taker has
finished already or is still running.
"""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from ops.embedded_redis import redis_answers
from ops.simulator import OpenAISimulator
from ops.simulator.server import ServerThread, free_port
from ops.stack import WORKER_GRACE_S, ChildProcess, worker_command
from producers.client import Client
from routing.keys import Keys
from routing.models import JobState
from tests.helpers import eventually
from tests.integration.harness import Sim, Worker, settings_for, stack_env, write_config

LEASE_S = 3


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=20)


@dataclass
class Partition:
    """A namespace with two links to the host: ``redis`` (10.R.0.0/30) and ``provider``
    (10.P.0.0/30); the host's ends are ``.1``, the namespace's ``.2``."""

    namespace: str
    redis_host: str
    provider_host: str
    redis_link: str  # the namespace's end of the Redis link

    def cut(self) -> None:
        sh("ip", "netns", "exec", self.namespace, "ip", "link", "set", self.redis_link, "down")

    def mend(self) -> None:
        sh("ip", "netns", "exec", self.namespace, "ip", "link", "set", self.redis_link, "up")

    def reaches(self, host: str, port: int) -> bool:
        probe = f"import socket; socket.create_connection(('{host}', {port}), timeout=1)"
        done = subprocess.run(
            ["ip", "netns", "exec", self.namespace, "python3", "-c", probe],
            capture_output=True,
            timeout=10,
            check=False,
        )
        return done.returncode == 0


@pytest.fixture
def partition() -> Iterator[Partition]:
    tag = secrets.token_hex(3)
    namespace = f"tnt-{tag}"
    octets = [secrets.randbelow(200) + 20, secrets.randbelow(200) + 20]
    links = {"redis": (f"tr{tag}h", f"tr{tag}n"), "provider": (f"tp{tag}h", f"tp{tag}n")}
    hosts = {}
    made: list[str] = []
    try:
        sh("ip", "netns", "add", namespace)
        sh("ip", "netns", "exec", namespace, "ip", "link", "set", "lo", "up")
        for (name, (host_end, ns_end)), octet in zip(links.items(), octets, strict=True):
            sh("ip", "link", "add", host_end, "type", "veth", "peer", "name", ns_end)
            made.append(host_end)
            sh("ip", "link", "set", ns_end, "netns", namespace)
            sh("ip", "addr", "add", f"10.{octet}.0.1/30", "dev", host_end)
            sh("ip", "link", "set", host_end, "up")
            sh(
                "ip",
                "netns",
                "exec",
                namespace,
                "ip",
                "addr",
                "add",
                f"10.{octet}.0.2/30",
                "dev",
                ns_end,
            )
            sh("ip", "netns", "exec", namespace, "ip", "link", "set", ns_end, "up")
            hosts[name] = f"10.{octet}.0.1"
        yield Partition(namespace, hosts["redis"], hosts["provider"], links["redis"][1])
    finally:
        for host_end in made:  # deleting one end of a veth deletes the pair
            subprocess.run(["ip", "link", "del", host_end], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)


class NamespacedSim(Sim):
    """The simulator, listening on the host's end of the provider link (reachable from the
    host too): one simulator, so its call count is every call of every worker."""

    def __init__(self, name: str, key: str, host: str) -> None:
        self.name = name
        self.key = key
        self.app = OpenAISimulator(name=name, api_key=key)
        self.server = ServerThread(self.app, host=host).start()


class PrivateRedis:
    """redis-server on 127.0.0.1 (the host's workers) and the Redis link's host end (the
    namespaced worker), never the machine's own Redis."""

    def __init__(self, directory: Path, bind_also: str) -> None:
        self.port = free_port()
        argv = ["redis-server", "--bind", "127.0.0.1", bind_also, "--port", str(self.port)]
        argv += [
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
            "--dir",
            str(directory),
        ]
        self.process = ChildProcess("redis", argv, log_dir=directory)
        self.local_url = f"redis://127.0.0.1:{self.port}/0"
        self.remote_url = f"redis://{bind_also}:{self.port}/0"
        self.process.wait_until(
            lambda: redis_answers(self.local_url, 0.2), timeout_s=15, what="PING"
        )

    def stop(self) -> None:
        self.process.stop()


class NamespacedWorker(Worker):
    """A celery worker started inside the namespace (``ip netns exec`` execs it: same pid)."""

    def __init__(self, env: dict[str, str], log_path: Path, namespace: str) -> None:
        super().__init__(env, log_path)
        self.namespace = namespace

    def start(self, *, wait: bool = True) -> Worker:
        command = worker_command(
            concurrency=self.concurrency, hostname=f"late{time.monotonic_ns()}@%h", heartbeat=False
        )
        self.process = ChildProcess(
            self.log_path.stem,
            ["ip", "netns", "exec", self.namespace, *command],
            env=self.env,
            log_dir=self.log_path.parent,
            grace_s=WORKER_GRACE_S,
        )
        if wait:
            self.wait_ready()
        return self


@pytest.mark.parametrize("comes_back", ["after_the_taker_finished", "while_the_taker_runs"])
def test_a_worker_cut_off_past_its_lease_cannot_overwrite_the_run_that_took_over(
    comes_back, partition, tmp_path
):
    server = PrivateRedis(tmp_path, partition.redis_host)
    primary = NamespacedSim(
        "primary", f"sim-primary-{secrets.token_hex(8)}", partition.provider_host
    )
    namespace = f"t-{secrets.token_hex(5)}"
    keys = Keys(namespace)
    config = write_config(
        tmp_path / "turnout.yaml", [primary], policy={"attempt_timeout_s": 40, "deadline_s": 60}
    )
    host_env = stack_env(
        server.local_url,
        namespace,
        config,
        [primary],
        TURNOUT_LEASE_S=str(LEASE_S),
        TURNOUT_VISIBILITY_TIMEOUT="300",  # room for the 60 s deadline; never what rescues
    )
    late_env = {**host_env, "REDIS_URL": server.remote_url}
    late = NamespacedWorker(late_env, tmp_path / "late.log", partition.namespace)
    taker = Worker(host_env, tmp_path / "taker.log")
    client = Client(settings=settings_for(host_env))
    watcher = redis.Redis.from_url(server.local_url, decode_responses=True)
    try:
        assert partition.reaches(partition.redis_host, server.port), "the namespace reaches Redis"
        first_call_s, second_call_s = (12.0, 0.0) if comes_back.startswith("after") else (8.0, 20.0)
        primary.set_faults(latency_ms=first_call_s * 1000)
        late.start()
        handle = client.submit("who finishes me?")
        eventually(lambda: primary.stats()["in_flight"] == 1, timeout=30, what="the late call")
        primary.set_faults(latency_ms=second_call_s * 1000)  # read at a call's start
        taker.start()
        partition.cut()
        cut_at = time.monotonic()
        assert not partition.reaches(partition.redis_host, server.port), "cut off from Redis"
        assert partition.reaches(partition.provider_host, primary.server.port), "not the provider"

        if comes_back.startswith("after"):
            finished = handle.wait(timeout=90)
            eventually(lambda: primary.stats()["in_flight"] == 0, timeout=30, what="late call done")
            time.sleep(1)  # the late worker is now retrying its finish against a dead link
        else:
            eventually(lambda: primary.chat_requests() == 2, timeout=60, what="the taker's call")
            eventually(lambda: primary.stats()["in_flight"] == 1, timeout=30, what="late call done")
            assert handle.state() is JobState.RUNNING, "the taker has not finished"
        partition.mend()
        mended_at = time.monotonic()
        late_log = "lost its lease" if comes_back.startswith("while") else "had already finished"
        eventually(lambda: late_log in late.log(), timeout=60, what="the late finish answered")
        if comes_back.startswith("while"):
            finished = handle.wait(timeout=90)
        print(
            f"\n{comes_back}: link mended {mended_at - cut_at:.1f}s after the cut; "
            f"finished by run {finished.runs} (the taker); late worker logged: {late_log!r}"
        )
        time.sleep(3)  # any overwrite or second run would show by now
        result = handle.result()
        assert result.state is JobState.SUCCEEDED
        assert result.runs == 2, "the taker's run"
        assert result.finished_at == finished.finished_at, "the first finish stands"
        assert primary.chat_requests() == 2, "one call per run, none after the reconnect"
        assert sorted((a.outcome, a.run) for a in result.attempts) == [("ok", 1), ("ok", 2)], (
            "each call logged once: the late run's too, as it happened"
        )
        assert watcher.llen(keys.queue_list(keys.queue)) == 0, "no message left to run it again"
        assert "job %s: this run lost its lease" not in taker.log()
    finally:
        watcher.close()
        client.close()
        late.stop()
        taker.stop()
        primary.stop()
        server.stop()
