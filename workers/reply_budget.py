"""The bytes of reply bodies one worker process may hold at once, shared by all its threads.

Why: the per-call cap (``workers.http.MAX_BODY_BYTES``) bounds one call, not the process. The
threads pool runs hundreds of calls at once, each holding its raw and its decoded body, so an
attack run took a worker from 77 MB to 1,176 MB with 32 threads of 40 MiB replies, and to
1,414 MB with gzip bombs. A budget shared by every thread bounds the sum instead: a call that
would take it past its limit fails with ``ReplyBudgetExhausted`` and the process does not grow.

Bytes are reserved as they arrive and released when they are dropped; the body a call returns
gives its bytes back when it is garbage collected (``BudgetedBody``), so it still counts while
the adapter parses it (the parse's own objects do not). The lock is held for an addition, never
across I/O; a small reply that arrives in one chunk is not charged at all
(workers.reply_body.UNCHARGED_BYTES).

The ceiling, measured with 32 threads (tests/integration/test_reply_memory.py): resident
memory stays under baseline + budget + ~30 MB (in-flight socket chunks, decoder state; the
test allows 64), and returns to within ~6 MB of the baseline after the burst.
"""

from __future__ import annotations

import threading

from routing.errors import ReplyBudgetExhausted

MIB = 1024 * 1024


class ReplyBudget:
    """A thread-safe byte counter with a ceiling: ``reserve`` refuses instead of exceeding it."""

    def __init__(self, limit_bytes: int) -> None:
        if limit_bytes <= 0:
            raise ValueError("a reply budget needs a positive limit")
        self.limit_bytes = limit_bytes
        self._in_use = 0
        self._lock = threading.Lock()

    @property
    def in_use_bytes(self) -> int:
        return self._in_use

    def reserve(self, size: int) -> bool:
        """Take ``size`` bytes if they fit under the limit; False (and nothing taken) if not."""
        with self._lock:
            if self._in_use + size > self.limit_bytes:
                return False
            self._in_use += size
            return True

    def release(self, size: int) -> None:
        with self._lock:
            self._in_use -= size


class Reservation:
    """The bytes one call holds: taken step by step as its body grows, given back at once.

    Not shared between threads: each call makes its own.
    """

    def __init__(self, budget: ReplyBudget) -> None:
        self.budget = budget
        self.size = 0

    def take(self, size: int) -> None:
        """Reserve ``size`` more bytes, or raise ReplyBudgetExhausted (the call keeps what it
        already held, for ``give_back`` to return)."""
        if size <= 0:
            return
        if not self.budget.reserve(size):
            held, limit = self.size, self.budget.limit_bytes
            raise ReplyBudgetExhausted(
                f"this worker's reply budget ({limit // MIB} MiB, TURNOUT_REPLY_BUDGET_MB) is "
                f"spent by other calls: {held + size} more bytes of this reply do not fit"
            )
        self.size += size

    def give_back(self, size: int | None = None) -> None:
        """Return ``size`` bytes (all of them when None)."""
        size = self.size if size is None else min(size, self.size)
        if size:
            self.size -= size
            self.budget.release(size)


class BudgetedBody(bytes):
    """A reply body that gives its bytes back to the budget when it is garbage collected.

    A ``bytes`` like any other to the adapters that parse it; tying the release to its life
    means a body kept (by an adapter, a traceback, a test) still counts, and one dropped stops
    counting without anyone having to remember to release it.
    """

    _reservation: Reservation | None = None

    @classmethod
    def holding(
        cls, data: bytes | bytearray | memoryview, reservation: Reservation
    ) -> BudgetedBody:
        """A copy of ``data`` that owns ``reservation`` (its bytes already taken)."""
        body = cls(data)
        body._reservation = reservation
        return body

    def release(self) -> None:
        """Stop counting these bytes now (the reply is parsed): what a call does when it is done
        with its reply, rather than waiting for the collector. A traceback that keeps the
        body alive in a reference cycle would otherwise hold its share of the budget until a
        full collection, and enough failed calls with large error bodies spend the budget for
        healthy ones."""
        reservation, self._reservation = self._reservation, None
        if reservation is not None:
            reservation.give_back()

    def __del__(self) -> None:
        self.release()


def release_body(body: bytes) -> None:
    """Give back the budget a reply body holds, if it holds any (small bodies hold none)."""
    if isinstance(body, BudgetedBody):
        body.release()
