"""The request size limit of ``turnout serve``, before anything parses a body.

A body is checked twice: a declared ``Content-Length`` over the limit is answered 413 before a
byte of it is read, and the bytes that really arrive are counted as they come (a chunked body
declares nothing, and a declaration may lie), so no request makes the server hold more than
the limit. The body is read here, whole, and handed on: the app parses it once it is known to
be small enough. (FastAPI's own ``max_body_size`` answers in its ``{"detail": ...}`` shape,
not OpenAI's, which is why this is ours.)
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from producers.http_front.errors import body_too_large


class BodySizeLimit:
    """ASGI middleware: HTTP request bodies over ``max_bytes`` are answered 413."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = declared_length(scope)
        if declared is not None and declared > self.max_bytes:
            await body_too_large(self.max_bytes, declared).response()(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the caller left: nobody to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await body_too_large(self.max_bytes).response()(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()  # after the body: only a disconnect can come
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def declared_length(scope: Scope) -> int | None:
    """The request's Content-Length, if it declares a usable one (the server refuses a
    malformed one before the app is called; the byte count catches any that slip through)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
