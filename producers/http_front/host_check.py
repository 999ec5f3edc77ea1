"""The ``Host`` allow-list of ``turnout serve``: a request naming another host is answered 421.

Against DNS rebinding (routing.host_allowlist says how it works): a page whose name was made to
resolve to this server's address is refused before its token is even looked at, so a token
that leaked into a browser is of no use to a page on another origin. Outermost but for the
access log, so the refusal is logged and nothing else runs. (Starlette's TrustedHostMiddleware
answers a plain-text 400, not OpenAI's shape, which is why this is ours.)
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from producers.http_front.errors import host_not_allowed
from routing.host_allowlist import HostAllowList


class AllowedHosts:
    """ASGI middleware: HTTP requests whose ``Host`` is not in ``hosts`` are answered 421."""

    def __init__(self, app: ASGIApp, *, hosts: HostAllowList) -> None:
        self.app = app
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self.hosts.allows(request_host(scope)):
            await host_not_allowed().response()(scope, receive, send)
            return
        await self.app(scope, receive, send)


def request_host(scope: Scope) -> str | None:
    """The request's ``Host`` header, if it sent one it can be read as text."""
    for name, value in scope["headers"]:
        if name == b"host":
            try:
                return bytes(value).decode("ascii")
            except UnicodeDecodeError:
                return None
    return None
