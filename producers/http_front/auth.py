"""Bearer tokens for ``turnout serve``: who may submit jobs that spend the providers' keys.

Tokens come from TURNOUT_API_TOKENS (comma-separated, so one can be rotated out while its
successor is already in use). They are held only as SHA-256 digests, and a presented token is
compared with every one of them by ``hmac.compare_digest``, always all of them: neither the
time an answer takes nor its text says how close a guess was, how long a token is, or which
token matched. A token is never logged and never repeated in an answer.

The check is an ASGI middleware, outside FastAPI's routing, so it runs before anything reads
the body: a caller without a token gets its 401 whatever it sends, and cannot make the server
buffer or parse a byte.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from producers.http_front.errors import unauthorized
from producers.settings import ProducerSettings
from routing.errors import ConfigError
from routing.secret_strength import MAKE_ONE, MIN_SECRET_CHARS, secret_weakness

#: The request state field holding the caller's identity (a digest of its token).
CALLER = "caller"
#: Shorter tokens can be guessed (routing.secret_strength has the rest of the check).
MIN_TOKEN_CHARS = MIN_SECRET_CHARS
_TOKEN = re.compile(r"^[\x21-\x7e]+$")  # what an HTTP header carries as is, commas aside


def parse_tokens(raw: str, *, setting: str = "TURNOUT_API_TOKENS") -> list[str]:
    """The tokens of a TURNOUT_API_TOKENS (or ``setting``) value; ConfigError naming the bad
    ones by position, never by value. A placeholder (.env.example's value) or a weak token is
    refused like a malformed one: copied from the example, it would be a credential every
    reader knows."""
    tokens = [token.strip() for token in raw.split(",")]
    tokens = [token for token in tokens if token]
    problems = []
    for number, token in enumerate(tokens, 1):
        where = f"token {number} of {len(tokens)}"
        if not _TOKEN.match(token):
            problems.append(f"{where} has spaces or characters outside printable ASCII")
        elif weakness := secret_weakness(token, min_chars=MIN_TOKEN_CHARS):
            problems.append(f"{where} {weakness}")
    if problems:
        raise ConfigError(f"{setting}: {'; '.join(problems)}; fix: {MAKE_ONE}")
    return tokens


class BearerTokens:
    """The tokens callers may present; the admin ones also read every job."""

    def __init__(self, tokens: Iterable[str], admin_tokens: Iterable[str] = ()) -> None:
        admins = tuple(admin_tokens)
        self._digests = tuple(_digest(token.encode()) for token in (*tokens, *admins))
        if not self._digests:
            raise ConfigError(f"TURNOUT_API_TOKENS holds no token; fix: {MAKE_ONE}")
        #: Callers (``caller_of``) that may read every job.
        self.admins = frozenset(caller_of(token.encode()) for token in admins)

    @classmethod
    def from_settings(cls, settings: ProducerSettings) -> BearerTokens | None:
        """None when TURNOUT_API_TOKENS and TURNOUT_ADMIN_TOKENS are both unset or blank."""
        tokens, admins = [], []
        if settings.api_tokens is not None:
            tokens = parse_tokens(settings.api_tokens.get_secret_value())
        if settings.admin_tokens is not None:
            admins = parse_tokens(
                settings.admin_tokens.get_secret_value(), setting="TURNOUT_ADMIN_TOKENS"
            )
        return cls(tokens, admins) if tokens or admins else None

    def __len__(self) -> int:
        return len(self._digests)

    def accepts(self, presented: bytes) -> bool:
        """Whether ``presented`` is one of the tokens, in time independent of which, if any."""
        digest = _digest(presented)
        matched = False
        for known in self._digests:
            matched |= hmac.compare_digest(digest, known)
        return matched

    def __repr__(self) -> str:
        return f"BearerTokens(<{len(self._digests)} tokens>)"


def caller_of(token: bytes) -> str:
    """Who presents ``token``, as the app knows callers: the hex digest, never the token."""
    return _digest(token).hex()


def _digest(token: bytes) -> bytes:
    # Equal-length digests: compare_digest then leaks nothing about a token's length either.
    return hashlib.sha256(token).digest()


def bearer_credentials(authorization: bytes | None) -> bytes | None:
    """The token of an ``Authorization: Bearer <token>`` header value (scheme in any case)."""
    if not authorization:
        return None
    scheme, _, credentials = authorization.strip().partition(b" ")
    credentials = credentials.strip()
    if scheme.lower() != b"bearer" or not credentials:
        return None
    return credentials


class BearerAuth:
    """ASGI middleware: every HTTP request outside ``public_paths`` needs a token."""

    def __init__(self, app: ASGIApp, *, tokens: BearerTokens, public_paths: Iterable[str]) -> None:
        self.app = app
        self.tokens = tokens
        self.public_paths = frozenset(public_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.public_paths:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])  # header names arrive lower-cased
        presented = bearer_credentials(headers.get(b"authorization"))
        if presented is None or not self.tokens.accepts(presented):
            await unauthorized(token_sent=presented is not None).response()(scope, receive, send)
            return
        # Who is calling, as a digest (never the token): idempotency keys are scoped to it, and
        # the jobs it submits are owned by it.
        scope.setdefault("state", {})[CALLER] = caller_of(presented)
        await self.app(scope, receive, send)
