"""One completion's HTTP exchange: a single call for most providers; for one whose work runs
in the background (Replicate's predictions), the start, the polls until the work is final, and
a cancel when the time runs out first.

Everything happens within the attempt's ``timeout_s``, which the attempt loop already bounds by
the job's deadline (workers.execution), and part of it is kept for the cancel: work turnout has
given up on is called off rather than left running (and billing) on the provider.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import TypeGuard

from routing.errors import ProviderError, ProviderTimeout
from routing.models import CompletionRequest
from workers.http import HttpCall, HttpReply, HttpTransport
from workers.providers.base import ProviderAdapter
from workers.providers.polling import Pending, PollingAdapter
from workers.providers.wrong_address import check_address
from workers.reply_budget import release_body

log = logging.getLogger("turnout.worker")

#: The longest a cancel may take, and the share of an attempt kept for one.
CANCEL_TIMEOUT_S = 2.0
CANCEL_SHARE = 0.2
#: What the provider is asked to hold the start's reply short of its timeout, so the reply
#: (with the work's id, to poll or cancel) arrives before the call times out.
WAIT_MARGIN_S = 1.0


#: Adapter type -> whether it polls, asked of its first instance.
_POLLING_TYPES: dict[type, bool] = {}


def _polls(adapter: ProviderAdapter) -> TypeGuard[PollingAdapter]:
    """Whether ``adapter`` polls, asked once per adapter type: an ``isinstance`` against the
    runtime-checkable protocol inspects each of its members on every call (4 % of a loaded
    worker's CPU, measured), and adapters of one type are alike (their methods are the class's,
    their attributes set by its ``__init__``)."""
    kind = type(adapter)
    polls = _POLLING_TYPES.get(kind)
    if polls is None:
        polls = _POLLING_TYPES[kind] = isinstance(adapter, PollingAdapter)
    return polls


def exchange(
    transport: HttpTransport,
    adapter: ProviderAdapter,
    request: CompletionRequest,
    timeout_s: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> HttpReply:
    """The reply that ``adapter.parse_reply`` reads: the only one, or the final poll's."""
    if not _polls(adapter):
        return _send(transport, adapter.build_call(request), timeout_s)
    deadline = clock() + timeout_s
    cancel_s = min(CANCEL_TIMEOUT_S, timeout_s * CANCEL_SHARE)
    start_s = max(timeout_s - cancel_s, 0.001)
    # Prefer: wait takes whole seconds; an attempt too short for one asks for no wait at all,
    # so the reply (and the prediction's id) comes back before the call can time out.
    wait_s = max(0, min(60, math.floor(start_s - WAIT_MARGIN_S)))
    reply = _send(transport, adapter.build_start(request, wait_s=wait_s), start_s)
    while (pending := adapter.pending(reply)) is not None:
        release_body(reply.body)
        left = deadline - clock() - cancel_s
        if left < pending.interval_s:
            _cancel(transport, pending, cancel_s)
            raise ProviderTimeout(
                f"{adapter.deployment.provider} {pending.work_id} still {pending.status} "
                f"after {timeout_s:g}s; canceled it"
            )
        sleep(pending.interval_s)
        try:
            reply = _send(transport, pending.poll, deadline - clock() - cancel_s)
        except ProviderError:
            _cancel(transport, pending, cancel_s)
            raise
    return reply


def _send(transport: HttpTransport, call: HttpCall, timeout_s: float) -> HttpReply:
    """One call's reply; a 404 no provider API would send is Misconfigured (a wrong base URL,
    named in the error), whichever call of the exchange met it."""
    reply = transport.send(call, timeout_s=timeout_s)
    try:
        check_address(call, reply)
    except ProviderError:
        release_body(reply.body)
        raise
    return reply


def _cancel(transport: HttpTransport, pending: Pending, timeout_s: float) -> None:
    """Best effort: a cancel that fails is logged, and the attempt fails as it would have."""
    try:
        reply = transport.send(pending.cancel, timeout_s=max(timeout_s, 0.001))
    except ProviderError as exc:
        log.warning("could not cancel %s: %s", pending.work_id, exc.error_class)
        return
    try:
        if reply.status >= 400:
            log.warning("cancel of %s answered %s", pending.work_id, reply.status)
    finally:
        release_body(reply.body)
