"""A producer's settings: the core ones and those of ``turnout serve``, and no credential.

``ProducerSettings`` has no field for any provider key, so a producer process never loads one,
even when the ``.env`` beside it holds them (tests/producers/test_settings.py proves it).
"""

from __future__ import annotations

from pydantic import Field, SecretStr

from routing.settings import CoreSettings


class ProducerSettings(CoreSettings):
    """``Client``, ``turnout batch`` and ``turnout serve`` build these."""

    #: Bearer tokens callers of ``turnout serve`` send, comma-separated (several, so one can be
    #: rotated out while the next is already in use). Unset, serve refuses to start without
    #: ``--no-auth``. A secret: never logged, never echoed in an answer.
    api_tokens: SecretStr | None = Field(default=None, validation_alias="TURNOUT_API_TOKENS")
    #: Tokens, in the same format, whose callers may also read every job, whoever submitted it
    #: (a caller of TURNOUT_API_TOKENS reads only its own jobs). A secret like those.
    admin_tokens: SecretStr | None = Field(default=None, validation_alias="TURNOUT_ADMIN_TOKENS")
    #: How long ``POST /v1/chat/completions`` waits for its job; a job still running then is
    #: answered 504 with its id, and keeps running (``GET /v1/jobs/{id}`` has its result).
    serve_timeout_s: float = Field(
        default=60.0, gt=0, le=3600, validation_alias="TURNOUT_SERVE_TIMEOUT"
    )
    #: Largest request body serve reads, in bytes; a larger one is answered 413 unread. 8 MiB
    #: holds the longest request the producer accepts (4 million characters) in ASCII JSON.
    serve_max_body_bytes: int = Field(
        default=8 * 1024 * 1024, ge=1024, validation_alias="TURNOUT_SERVE_MAX_BODY"
    )
    #: ``Host`` names serve answers besides loopback ones and its ``--host`` address,
    #: comma-separated (compose's service name, a real domain; ``*`` for any, behind a proxy
    #: that checks them): a request naming any other is answered 421, against DNS rebinding.
    serve_allowed_hosts: str | None = Field(
        default=None, validation_alias="TURNOUT_SERVE_ALLOWED_HOSTS"
    )
