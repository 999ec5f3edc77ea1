"""Serving a simulator over real HTTP on 127.0.0.1: in this process (tests) or as a command."""

from __future__ import annotations

import socket
import threading
from typing import Any

import uvicorn

from ops.polling import poll_until

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _config(app: Any, host: str, port: int, *, grace_s: int = 5) -> uvicorn.Config:
    # A hanging request (the --hang fault) must not hold shutdown: grace_s bounds the wait.
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        backlog=4096,
        timeout_keep_alive=75,
        timeout_graceful_shutdown=grace_s,
    )


def serve(app: Any, *, port: int, host: str = LOOPBACK) -> None:
    """Run until interrupted (SIGINT/SIGTERM stop it cleanly)."""
    uvicorn.Server(_config(app, host, port)).run()


class ServerThread:
    """A simulator on a background thread; ``url`` is its base URL, ``stop()`` ends it."""

    def __init__(self, app: Any, *, port: int | None = None, host: str = LOOPBACK) -> None:
        self.app = app
        self.host = host
        self.port = port or free_port(host)
        config = _config(app, host, self.port, grace_s=1)
        config.loop = "asyncio"  # uvloop installs a global policy; keep the test process clean
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, name=f"sim-{self.port}", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ServerThread:
        self._thread.start()
        poll_until(
            lambda: self._server.started or not self._thread.is_alive(),
            timeout_s=10,
            interval_s=0.01,
        )
        if not self._server.started:
            raise RuntimeError(f"simulator on port {self.port} did not start")
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
