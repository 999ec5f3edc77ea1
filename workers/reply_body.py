"""Assembling a reply body from the chunks the socket yields, within the worker's reply budget.

Pure apart from iterating ``chunks`` (the transport's stream does the I/O), so the limits are
tested on lists of bytes: a gzip bomb stops at whichever is smaller, the per-call cap or what
is left of the budget, having decoded at most one step past it.

Why it is built this way (measured: tests/integration/test_reply_memory.py):

- Compressed bodies are decoded as their chunks arrive, ``DECODE_STEP`` bytes of output at a
  time (``zlib.decompressobj(...).decompress(data, max_length)``), so the raw body is never
  held whole and a bomb's output is counted before it can grow.
- The body is written into one preallocated ``bytearray``: sized by Content-Length when the
  server sent one, else doubled when full. Never resized in place (a ``realloc`` may copy
  without telling anyone), so every byte it holds is charged, growth included.
- The final copy into ``BudgetedBody`` is charged too (the body is briefly there twice).
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Iterable

from routing.errors import InvalidResponse
from workers.reply_budget import BudgetedBody, ReplyBudget, Reservation

#: Bytes of decoded output per decompress step: what a bomb can overshoot its limits by.
DECODE_STEP = 64 * 1024
#: A body of unknown length starts in a buffer this big, then doubles.
FIRST_BUFFER = 16 * 1024
#: An unencoded body that arrives whole in one chunk this small is returned as it came,
#: uncharged: nearly every completion reply. The cost of charging it (a copy, a finalizer;
#: 5 us of 270 per call, measured) would buy nothing, since a thread holds one such chunk at
#: a time whether it is charged or not: it is in the ceiling's per-thread margin.
UNCHARGED_BYTES = 64 * 1024
#: The most a Content-Length reserves before the bytes arrive.
PREALLOCATE_MAX = 1024 * 1024

_WINDOW_BITS = {
    "gzip": 16 + zlib.MAX_WBITS,
    "x-gzip": 16 + zlib.MAX_WBITS,
    "deflate": zlib.MAX_WBITS,
}


def read_reply_body(
    chunks: Iterable[bytes],
    *,
    encoding: str,
    budget: ReplyBudget,
    max_bytes: int,
    length: int | None = None,
) -> bytes:
    """The decoded body of ``chunks``, sent with Content-Encoding ``encoding`` and, when the
    server said so, Content-Length ``length`` (the buffer of an unencoded body is then taken
    whole, at once, and a length over ``max_bytes`` is refused before a byte is read).

    Raises InvalidResponse (an encoding we did not ask for, a corrupt one, a body, raw or
    decoded, over ``max_bytes``: the provider's fault) or ReplyBudgetExhausted (it would take
    this worker past its budget: the worker's condition, not the provider's). Whatever it
    raises, it has given back every byte it took.
    """
    encoding = encoding.strip().lower()
    identity = encoding in ("", "identity")
    if not identity and encoding not in _WINDOW_BITS:
        raise InvalidResponse(f"response uses an encoding we did not ask for: {encoding}")
    if identity and length is not None and length > max_bytes:
        raise InvalidResponse(f"response body larger than {max_bytes} bytes (announced)")
    if identity:
        chunks = iter(chunks)
        first = next(chunks, b"")
        if len(first) <= min(UNCHARGED_BYTES, max_bytes):
            second = next(chunks, None)
            if second is None:
                return first
            chunks = itertools.chain((first, second), chunks)
        else:
            chunks = itertools.chain((first,), chunks)
    body = _Body(Reservation(budget), max_bytes, length if identity else None)
    try:
        if identity:
            for chunk in chunks:
                body.add(chunk, "response body")
        else:
            _decode_into(body, chunks, encoding)
        return body.finish()
    finally:
        body.drop()


def _decode_into(body: _Body, chunks: Iterable[bytes], encoding: str) -> None:
    decompressor = zlib.decompressobj(_WINDOW_BITS[encoding])
    received = 0
    try:
        for chunk in chunks:
            received += len(chunk)
            if received > body.max_bytes:
                raise InvalidResponse(f"response body larger than {body.max_bytes} bytes")
            data = chunk
            while data and not decompressor.eof:
                body.add(decompressor.decompress(data, DECODE_STEP), "decoded response body")
                data = decompressor.unconsumed_tail
    except zlib.error as exc:
        raise InvalidResponse(f"response body is not valid {encoding}: {exc}") from None


class _Body:
    """One call's body as it grows in its buffer, and the bytes of budget it holds.

    The buffer is a ``bytearray`` whose length is its capacity, filled by slice assignment and
    replaced (never resized) when it is full: each growth is charged for the old buffer and
    the new one together, as both exist while the old is copied.
    """

    def __init__(self, reservation: Reservation, max_bytes: int, length: int | None) -> None:
        self.reservation = reservation
        self.max_bytes = max_bytes
        self.buffer = bytearray()
        self.size = 0
        if length:
            # A Content-Length is a claim, not bytes: reserve at most PREALLOCATE_MAX for it, and
            # the rest as it arrives (eight replies announcing 32 MiB and then stalling would
            # otherwise hold a 256 MiB budget with 70 KB received).
            self._grow_to(min(length, PREALLOCATE_MAX, self.max_bytes))

    def add(self, piece: bytes, what: str) -> None:
        end = self.size + len(piece)
        if end > self.max_bytes:
            raise InvalidResponse(f"{what} larger than {self.max_bytes} bytes")
        if end > len(self.buffer):
            self._grow_to(min(max(end, 2 * len(self.buffer), FIRST_BUFFER), self.max_bytes))
        self.buffer[self.size : end] = piece
        self.size = end

    def _grow_to(self, capacity: int) -> None:
        self.reservation.take(capacity)
        grown = bytearray(capacity)
        grown[: self.size] = memoryview(self.buffer)[: self.size]
        old_capacity = len(self.buffer)
        self.buffer = grown
        self.reservation.give_back(old_capacity)

    def finish(self) -> bytes:
        """The body as ``bytes`` that give its bytes back when they are dropped; the buffer's
        share of the budget is given back here."""
        size = self.size
        self.reservation.take(size)
        with memoryview(self.buffer) as view:
            body = BudgetedBody.holding(view[:size], self.reservation)
        buffer_share = self.reservation.size - size
        self.buffer = bytearray()
        self.reservation.give_back(buffer_share)
        self.reservation = Reservation(self.reservation.budget)
        return body

    def drop(self) -> None:
        """Free the buffer and give back what it still holds (nothing, after ``finish``)."""
        self.buffer = bytearray()
        self.reservation.give_back()
