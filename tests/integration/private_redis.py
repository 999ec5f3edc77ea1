"""A private redis-server for tests that kill, restart or pause Redis: its own port and data
directory, an append-only file synced on every write, so what it acknowledged is there again
after a SIGKILL and a start on the same port. The machine's Redis on 6379 is never touched."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from ops.embedded_redis import redis_answers
from ops.simulator.server import LOOPBACK, free_port
from ops.stack import ChildProcess


class RestartableRedis:
    """redis-server with ``appendonly yes`` and ``appendfsync always`` in ``directory``."""

    def __init__(self, directory: Path, *, password: str | None = None) -> None:
        self.port = free_port()
        self.directory = directory
        self.password = password
        self.process: ChildProcess | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{LOOPBACK}:{self.port}/0"

    def start(self) -> None:
        self.starts += 1
        argv = ["redis-server", "--bind", LOOPBACK, "--port", str(self.port), "--save", ""]
        argv += ["--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.directory)]
        if self.password:
            argv += ["--requirepass", self.password]
        self.process = ChildProcess(f"redis-{self.starts}", argv, log_dir=self.directory)
        self.process.wait_until(
            lambda: redis_answers(self.url, 0.2), timeout_s=15, what="PING answered"
        )

    def kill(self) -> None:
        """SIGKILL: no save, no goodbye; only the append-only file survives."""
        assert self.process is not None
        self.process.kill()

    def pause(self, seconds: float) -> None:
        """CLIENT PAUSE: every client's commands wait ``seconds`` (on this server only)."""
        with redis.Redis.from_url(self.url) as client:
            client.execute_command("CLIENT", "PAUSE", int(seconds * 1000), "ALL")

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RestartableRedis]:
    server = RestartableRedis(tmp_path / "redis")
    server.directory.mkdir()
    server.start()
    yield server
    server.stop()
