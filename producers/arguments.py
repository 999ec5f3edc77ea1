"""What the client's entry points accept, checked before anything is enqueued.

Every argument of ``Client.submit``, ``complete`` and their asyncio twins of a type they do not
take is an InvalidRequest naming it, as a bad field of the request is: never a TypeError from
deep inside, and never after the job went out (``complete(timeout="60")`` would fail its wait
with the job already running). The policy and targets are checked by routing.policies, where
they are resolved.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from producers.openai_format import invalid
from routing.errors import InvalidRequest
from routing.models import CompletionRequest, RoutingPolicy

RequestLike = CompletionRequest | Mapping[str, Any] | str
PolicyLike = str | RoutingPolicy | Mapping[str, Any] | None


def as_request(request: RequestLike) -> CompletionRequest:
    """A CompletionRequest from a request, a dict of its fields, or a bare user prompt;
    InvalidRequest for anything else (None, a list, bytes), as for a bad field."""
    if isinstance(request, CompletionRequest):
        return request
    if not isinstance(request, str | Mapping):
        raise InvalidRequest(
            "request: a prompt (str), a CompletionRequest or a dict of its fields is required, "
            f"not {type(request).__name__}",
            param="request",
        )
    try:
        if isinstance(request, str):
            return CompletionRequest.from_prompt(request)
        return CompletionRequest.model_validate(dict(request))
    except ValidationError as exc:
        raise invalid(exc, prefix="invalid completion request: ") from None


def checked_timeout(timeout: object) -> float | None:
    """A wait's ``timeout``: None (no limit) or a number of seconds; InvalidRequest otherwise,
    raised by ``complete`` before the job is enqueued (a TypeError from the wait would come
    after, with the job already running)."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout != timeout:
        raise InvalidRequest(
            f"timeout: a number of seconds or None is required, not {timeout!r:.40}",
            param="timeout",
        )
    return float(timeout)


def checked_owner(owner: object) -> str | None:
    """A job's ``owner``: None, or a non-empty string; InvalidRequest otherwise."""
    if owner is None:
        return None
    if not isinstance(owner, str) or not owner:
        raise InvalidRequest(
            f"owner: a non-empty string or None is required, not {owner!r:.40}", param="owner"
        )
    return owner
