"""Helpers every tier of tests shares: waiting for a condition, and a webhook on 127.0.0.1.

One copy of each, so a fix to how tests wait or what a receiver records reaches every test.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

from ops.polling import poll_until

T = TypeVar("T")


def eventually(
    predicate: Callable[[], T | None],
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    what: str = "",
) -> T:
    """``predicate``'s first truthy value; fails the test if none comes within ``timeout``
    seconds. A predicate may assert, to fail at once on what can no longer come right."""
    found = poll_until(predicate, timeout_s=timeout, interval_s=interval)
    assert found, f"gave up waiting for {what or predicate} after {timeout:g}s"
    return found


class WebhookReceiver:
    """A webhook (Slack's, say) on 127.0.0.1: records every JSON body POSTed to it and answers
    each with the next of ``statuses`` (then 200), once ``gate`` is set.

    ``url`` ends in ``path``: Slack's carries the token in its last segment, which tests use
    to check the URL never reaches a log. Listening from construction; ``stop()`` ends it.
    """

    def __init__(self, path: str = "/services/T000/B000/hook") -> None:
        self.statuses: list[int] = []
        self.retry_after: str | None = None
        self.bodies: list[dict[str, Any]] = []
        self.content_types: list[str] = []
        self.arrived = threading.Semaphore(0)
        self.gate = threading.Event()
        self.gate.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                receiver.content_types.append(self.headers.get("content-type", ""))
                receiver.arrived.release()
                receiver.gate.wait(30)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                if receiver.retry_after is not None and status != 200:
                    self.send_header("Retry-After", receiver.retry_after)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{path}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def wait_for(self, count: int, timeout_s: float = 5.0) -> None:
        """Until ``count`` more POSTs have arrived (answered or held at the gate)."""
        for _ in range(count):
            assert self.arrived.acquire(timeout=timeout_s), "the webhook got no POST in time"

    def events(self, route: str) -> list[str]:
        """The breaker events received about ``route``, in order."""
        return [body["event"] for body in self.bodies if body["route_id"] == route]

    def stop(self) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> WebhookReceiver:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
