"""Whose a job is, as ``turnout serve`` shows jobs: a caller sees its own, an admin sees all.

A job submitted through serve is owned by its caller (``auth.caller_of``: the digest of the
token, never the token), written by the create script with the job itself. Every route that
shows a job reads it through ``readable_job``, so the rule is in one place (the stream routes to
come call it too): a job of another caller is answered exactly as a job that does not exist, 404
``job_not_found``, so an id seen in a log or in Flower tells a caller nothing, not even that the
job exists. Callers of TURNOUT_ADMIN_TOKENS read every job. A job without an owner (submitted by
the Python client, or through serve ``--no-auth``) is an admin's to read while serve checks
tokens. Without auth there are no callers to tell apart, and every job is readable.
"""

from __future__ import annotations

import hmac

from fastapi import Request

from producers.client import AsyncJobHandle
from producers.http_front import errors
from producers.http_front.auth import CALLER, BearerTokens
from routing.errors import JobNotFound
from routing.models import CompletionResult


def caller_of_request(request: Request) -> str | None:
    """The caller the auth middleware identified, None when serve runs without auth."""
    caller = getattr(request.state, CALLER, None)
    return caller if isinstance(caller, str) else None


def may_read(caller: str | None, owner: str | None, tokens: BearerTokens | None) -> bool:
    """Whether ``caller`` may see a job owned by ``owner`` (both as ``auth.caller_of`` gives
    them); ``tokens`` is None when serve runs without auth."""
    if tokens is None:
        return True
    if caller is None:
        return False
    if caller in tokens.admins:
        return True
    return owner is not None and hmac.compare_digest(owner.encode(), caller.encode())


async def readable_job(
    handle: AsyncJobHandle, caller: str | None, tokens: BearerTokens | None
) -> CompletionResult:
    """The job, if ``caller`` may see it; the 404 of a missing job otherwise (one read of the
    record: the owner comes with it)."""
    try:
        stored = await handle.read()
    except JobNotFound:
        raise errors.job_not_found(handle.job_id) from None
    if not may_read(caller, stored.owner, tokens):
        raise errors.job_not_found(handle.job_id)
    return stored.result
