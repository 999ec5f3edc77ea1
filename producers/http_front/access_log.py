"""One log line per request of ``turnout serve``: method, path, status, milliseconds.

uvicorn's own access log is off: it prints the query string, and a caller who puts a token
there (``?api_key=...``, which turnout never reads) would find it in the log. This line has the
path only, and no header.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("turnout.serve.access")


class AccessLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def recorded(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recorded)
        except Exception:
            status = status or 500  # answered by the server-error handler further out
            raise
        finally:
            log.info(
                "%s %r %s %.0f ms",  # %r: a path cannot forge a log line
                scope["method"],
                scope["path"],
                status or "-",
                (time.perf_counter() - started) * 1000,
            )
