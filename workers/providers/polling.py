"""What an adapter whose provider answers later says: where to ask again, and how to call the
work off. Replicate's predictions run in the background: the create request may come back
``starting`` or ``processing``, and the result is fetched by polling. Pure types, no I/O:
``workers.exchange`` runs the loop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from routing.models import CompletionRequest
from workers.http import HttpCall, HttpReply
from workers.providers.base import ProviderAdapter


@dataclass(frozen=True)
class Pending:
    """Work the provider accepted and is still running."""

    #: The provider's id of the work (a prediction id), for the attempt log.
    work_id: str
    status: str
    poll: HttpCall
    cancel: HttpCall
    #: Seconds to wait before the next poll.
    interval_s: float


@runtime_checkable
class PollingAdapter(ProviderAdapter, Protocol):
    """An adapter whose call may answer before the work is done."""

    def build_start(self, request: CompletionRequest, *, wait_s: int) -> HttpCall:
        """The call that starts the work, asking the provider to hold the reply up to
        ``wait_s`` seconds for it to finish (0: to answer at once)."""
        ...

    def pending(self, reply: HttpReply) -> Pending | None:
        """The work still running, or None when ``reply`` is final (done, failed, or an
        error): ``parse_reply`` reads a final reply."""
        ...
