"""The HTTP seam over real sockets: what every failure of the network becomes."""

import asyncio
import contextlib
import gzip
import socket
import threading
import time
import zlib

import pytest

from ops.simulator.server import ServerThread, free_port
from routing.errors import (
    AddressUnreachable,
    AuthFailed,
    ConnectionFailed,
    InvalidResponse,
    ProviderTimeout,
)
from workers.http import HttpCall, HttpcoreTransport


def asgi(handler):
    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await handler(scope, receive, send)

    return app


async def answer(send, body, status=200, headers=()):
    await send({"type": "http.response.start", "status": status, "headers": list(headers)})
    await send({"type": "http.response.body", "body": body})


def call(server, path="/"):
    return HttpCall("POST", f"{server.url}{path}", {"authorization": "Bearer k"}, b"{}")


@pytest.fixture
def transport():
    transport = HttpcoreTransport(connect_timeout_s=1.0, max_body_bytes=1000)
    yield transport
    transport.close()


def test_a_reply_keeps_status_lowercased_headers_and_body(transport):
    async def handler(scope, receive, send):
        seen = dict(scope["headers"])
        await answer(
            send, seen[b"authorization"], 503, [(b"Retry-After", b"2"), (b"X-Request-Id", b"r1")]
        )

    with ServerThread(asgi(handler)) as server:
        reply = transport.send(call(server), timeout_s=5)
    assert reply.status == 503, "an HTTP error is a reply, not an exception"
    assert reply.headers["retry-after"] == "2"
    assert reply.body == b"Bearer k"
    assert reply.elapsed_s > 0


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_bodies_are_decoded(transport, encoding):
    payload = b'{"ok": true}'
    compressed = gzip.compress(payload) if encoding == "gzip" else zlib.compress(payload)

    async def handler(scope, receive, send):
        assert b"gzip" in dict(scope["headers"])[b"accept-encoding"]
        await answer(send, compressed, headers=[(b"content-encoding", encoding.encode())])

    with ServerThread(asgi(handler)) as server:
        assert transport.send(call(server), timeout_s=5).body == payload


def test_a_body_over_the_limit_is_an_invalid_response(transport):
    async def handler(scope, receive, send):
        await answer(send, b"x" * 5000)

    with ServerThread(asgi(handler)) as server, pytest.raises(InvalidResponse, match="larger"):
        transport.send(call(server), timeout_s=5)


def test_an_encoding_nobody_asked_for_is_an_invalid_response(transport):
    async def handler(scope, receive, send):
        await answer(send, b"??", headers=[(b"content-encoding", b"br")])

    with ServerThread(asgi(handler)) as server, pytest.raises(InvalidResponse, match="br"):
        transport.send(call(server), timeout_s=5)


def test_a_server_that_never_answers_is_a_timeout(transport):
    async def handler(scope, receive, send):
        await asyncio.sleep(30)

    with ServerThread(asgi(handler)) as server, pytest.raises(ProviderTimeout):
        transport.send(call(server), timeout_s=0.3)


def test_a_dribbling_server_cannot_outlast_the_deadline(transport):
    async def handler(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(50):
            await send({"type": "http.response.body", "body": b" ", "more_body": True})
            await asyncio.sleep(0.1)
        await send({"type": "http.response.body", "body": b"{}"})

    with ServerThread(asgi(handler)) as server:
        started = time.monotonic()
        with pytest.raises(ProviderTimeout):
            transport.send(call(server), timeout_s=0.5)
        elapsed = time.monotonic() - started
    assert elapsed < 1.0, "ended at its deadline, not a read timeout later"


def test_headers_dribbled_byte_by_byte_cannot_outlast_the_deadline(transport):
    """Below ASGI: a raw socket that sends the status line one byte every 0.2 s."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def dribble():
            connection, _ = listener.accept()
            with connection:
                for byte in b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}":
                    time.sleep(0.2)
                    with contextlib.suppress(OSError):
                        connection.sendall(bytes([byte]))

        server = threading.Thread(target=dribble, daemon=True)
        server.start()
        started = time.monotonic()
        with pytest.raises(ProviderTimeout):
            transport.send(HttpCall("POST", f"http://127.0.0.1:{port}/", {}, b"{}"), timeout_s=0.7)
        assert time.monotonic() - started < 1.2


def test_nobody_listening_is_a_connection_failure(transport):
    port = free_port()
    refused = HttpCall("POST", f"http://127.0.0.1:{port}/", {}, b"")
    with pytest.raises(ConnectionFailed):
        transport.send(refused, timeout_s=2)


@pytest.mark.parametrize("key", ["sk-test-abcdef0123\n", "sk-test-ébc0123456"])
def test_a_key_that_cannot_be_sent_is_auth_and_is_not_quoted(transport, key):
    async def handler(scope, receive, send):
        await answer(send, b"{}")

    with ServerThread(asgi(handler)) as server, pytest.raises(AuthFailed) as caught:
        transport.send(
            HttpCall("POST", f"{server.url}/", {"authorization": f"Bearer {key}"}, b"{}"),
            timeout_s=2,
        )
    assert key.strip()[:10] not in str(caught.value)
    assert key.strip()[:10] not in repr(caught.value)


def test_nobody_listening_names_the_host_and_port_and_nothing_else(transport):
    port = free_port()
    refused = HttpCall("POST", f"http://user:s3cret@127.0.0.1:{port}/v1/chat?key=k", {}, b"")
    with pytest.raises(AddressUnreachable) as caught:
        transport.send(refused, timeout_s=2)
    assert f"connection refused at 127.0.0.1:{port}" in caught.value.message
    assert "s3cret" not in caught.value.message
    assert "key=" not in caught.value.message
