"""OAuth2 access tokens for Vertex AI: google-auth mints them, this module decides when.

google-auth knows how to get a token (a service account's JWT-bearer grant, gcloud user
credentials, workload identity, the metadata server) but not how a worker with hundreds of
threads should hold one. Here:

* one token per cache, shared by every thread that builds a call;
* refreshed ``REFRESH_MARGIN`` (5 minutes) before it expires, so a call never leaves with a
  token that dies on the way (google-auth's own ``expired`` keeps only 3m45s of margin);
* one refresh at a time: while it runs, threads with a still-valid token keep using it, and
  threads without one wait for it (at most ``TOKEN_WAIT_S``) instead of minting their own;
* a failed refresh never costs a token that still works: it is handed out until it has less
  than ``MIN_VALIDITY`` left;
* a failed refresh (or credentials load) is remembered for ``FAILURE_COOLDOWN_S``: threads
  without a usable token fail at once with the same error instead of each retrying a token
  endpoint that may take ~30 s to fail (google-auth retries, with 10 s socket timeouts here);
* a 401 drops the token only if it is still the one the rejected call carried (compare and
  clear), so a late 401 for an old token does not throw away a fresh one;
* nothing is loaded or fetched until the first call: ``google.auth.default()`` may probe the
  metadata server, which a worker must not do at import or start-up;
* every failure becomes a ProviderError with a clipped message free of tokens, assertions and
  keys, so a Vertex deployment whose credentials are broken is failed over like any other
  (auth), and a token endpoint or metadata server that is down is retried (server_error,
  connection).

google.auth is imported inside functions: a worker that only calls the Gemini API never loads it.
"""

from __future__ import annotations

import datetime
import logging
import re
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from routing.errors import (
    AuthFailed,
    ConnectionFailed,
    ProviderError,
    ProviderTimeout,
    ServerError,
)
from workers.providers.reading import clip
from workers.redaction import remember_minted_secret

if TYPE_CHECKING:
    from google.auth.credentials import Credentials
    from google.auth.transport import Request

log = logging.getLogger("turnout.google_auth")

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
REFRESH_MARGIN = datetime.timedelta(minutes=5)
#: A token with less life left than this is not handed out: the caller waits for the refresh.
MIN_VALIDITY = datetime.timedelta(seconds=30)
#: Per HTTP request to the token endpoint (google-auth's own default is 120 s, and it retries).
REFRESH_TIMEOUT_S = 10.0
#: How long a failed refresh is answered from memory instead of being tried again.
FAILURE_COOLDOWN_S = 5.0
#: The longest a thread without a usable token waits for another thread's refresh.
TOKEN_WAIT_S = 30.0

CredentialsLoader = Callable[[], "Credentials"]


def credentials_loader(credentials_file: str | None) -> CredentialsLoader:
    """How to load this deployment's credentials, scoped to cloud-platform: the file named by
    GOOGLE_APPLICATION_CREDENTIALS (any type google-auth knows: a service-account key, gcloud's
    ``authorized_user``, workload identity's ``external_account``, an impersonated service
    account), else application default credentials (gcloud, metadata server, workload identity).

    The quota project is google-auth's either way: GOOGLE_CLOUD_QUOTA_PROJECT when set, else the
    one the file names (gcloud writes ``quota_project_id`` into user credentials)."""

    def load() -> Credentials:
        import google.auth

        if credentials_file:
            # google-auth warns that the generic loader does not validate the file: this one is
            # the operator's own configuration, so the warning says nothing here. (The load runs
            # once, under the cache's refresh lock.)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                loaded, _project = google.auth.load_credentials_from_file(  # type: ignore[no-untyped-call]
                    credentials_file, scopes=[CLOUD_PLATFORM_SCOPE]
                )
            return loaded  # type: ignore[no-any-return]
        default, _project = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
        return default

    return load


def bounded_request() -> Request:
    """google-auth's requests transport with a per-request timeout of REFRESH_TIMEOUT_S."""
    from google.auth.transport.requests import Request as RequestsRequest

    class _BoundedRequest(RequestsRequest):
        def __call__(
            self,
            url: str,
            method: str = "GET",
            body: Any = None,
            headers: Any = None,
            timeout: float | None = None,
            **kwargs: Any,
        ) -> Any:
            return super().__call__(  # type: ignore[no-untyped-call]
                url, method, body, headers, timeout=timeout or REFRESH_TIMEOUT_S, **kwargs
            )

    request: Request = _BoundedRequest()
    return request


def utcnow() -> datetime.datetime:
    """Naive UTC, the way google-auth stores ``Credentials.expiry``."""
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class _Token:
    value: str
    #: None: the credentials did not say (google-auth then treats the token as never expiring).
    expiry: datetime.datetime | None


@dataclass(frozen=True)
class _Failure:
    """The last refresh's error, kept to be raised again (as a new instance: one exception
    object raised in many threads at once would share and grow one traceback)."""

    kind: type[ProviderError]
    message: str
    at: float

    def replay(self) -> ProviderError:
        return self.kind(self.message)


class AccessTokenCache:
    """A bearer token for one set of Google credentials, safe to share between threads.

    ``cooldown_s`` is how long a failed refresh is answered from memory; ``token(wait_s=...)``
    bounds the wait for another thread's refresh."""

    def __init__(
        self,
        load: CredentialsLoader,
        *,
        request: Request | None = None,
        margin: datetime.timedelta = REFRESH_MARGIN,
        cooldown_s: float = FAILURE_COOLDOWN_S,
        now: Callable[[], datetime.datetime] = utcnow,
    ) -> None:
        self._load = load
        self._request = request
        self._margin = margin
        self._cooldown_s = cooldown_s
        self._now = now
        #: Held for a whole refresh: one at a time.
        self._lock = threading.Lock()
        #: Held only to swap ``_token``, so a 401's compare-and-clear never waits on a refresh.
        self._swap = threading.Lock()
        self._credentials: Credentials | None = None
        self._token: _Token | None = None
        self._failure: _Failure | None = None
        #: How many times a token was minted (what the concurrency tests count).
        self.refreshes = 0

    @property
    def quota_project_id(self) -> str | None:
        """The quota project the credentials carry (sent as ``x-goog-user-project``)."""
        project = getattr(self._credentials, "quota_project_id", None)
        return project if isinstance(project, str) and project else None

    def token(self, *, wait_s: float = TOKEN_WAIT_S) -> str:
        """A token with at least MIN_VALIDITY of life left, refreshed first when it is within
        the margin of its expiry.

        Raises AuthFailed, ServerError or ConnectionFailed when the refresh fails and no usable
        token is left (the same error, without trying again, for ``cooldown_s`` after), and
        ProviderTimeout when another thread's refresh holds it up for more than ``wait_s``."""
        current = self._token
        now = self._now()
        if current is not None and not self._due(current, now):
            return current.value
        if current is not None and self._usable(current, now):
            if self._recent_failure() is not None or not self._lock.acquire(blocking=False):
                return current.value  # refresh failed just now, or another thread is on it
        else:
            if (failure := self._recent_failure()) is not None:
                raise failure.replay()
            if not self._lock.acquire(timeout=max(wait_s, 0.0)):
                raise ProviderTimeout(
                    f"no Google access token after waiting {wait_s:g} s for a refresh"
                )
        try:
            return self._refresh_holding_lock()
        finally:
            self._lock.release()

    def invalidate(self, token: str) -> bool:
        """Forget ``token`` (the provider answered 401 to a call that carried it) so the next
        call mints a new one; a token refreshed since is kept. True when it was dropped."""
        with self._swap:
            if self._token is None or self._token.value != token:
                return False
            self._token = None
            return True

    def _refresh_holding_lock(self) -> str:
        current = self._token
        now = self._now()
        if current is not None and not self._due(current, now):
            return current.value  # refreshed while this thread waited
        usable = current if current is not None and self._usable(current, now) else None
        if (failure := self._recent_failure()) is not None:
            if usable is not None:
                return usable.value
            raise failure.replay()  # failed while this thread waited
        try:
            fresh = self._refresh()
        except ProviderError as exc:
            self._failure = _Failure(type(exc), exc.message, time.monotonic())
            if usable is None:
                raise
            log.warning(
                "Google token refresh failed; the current token (valid until %s UTC) is used "
                "meanwhile: %s",
                usable.expiry,
                exc.message,
            )
            return usable.value
        self._failure = None
        with self._swap:
            self._token = fresh
        return fresh.value

    def _recent_failure(self) -> _Failure | None:
        failure = self._failure
        if failure is None or time.monotonic() - failure.at >= self._cooldown_s:
            return None
        return failure

    def _due(self, token: _Token, now: datetime.datetime) -> bool:
        return token.expiry is not None and token.expiry - now <= self._margin

    @staticmethod
    def _usable(token: _Token, now: datetime.datetime) -> bool:
        return token.expiry is None or token.expiry - now > MIN_VALIDITY

    def _refresh(self) -> _Token:
        from google.auth import exceptions

        try:
            if self._credentials is None:
                self._credentials = self._load()
                adopted = _snapshot(self._credentials)
                if adopted is not None and not self._due(adopted, self._now()):
                    remember_minted_secret(adopted.value)
                    return adopted  # credentials that came with a good token
            if self._request is None:
                self._request = bounded_request()
            self._credentials.refresh(self._request)  # type: ignore[no-untyped-call]
        except exceptions.RefreshError as exc:
            raise refresh_failure(exc) from None
        except exceptions.TransportError as exc:
            raise ConnectionFailed(f"Google token endpoint unreachable: {describe(exc)}") from None
        except (exceptions.GoogleAuthError, OSError, ValueError, KeyError) as exc:
            raise AuthFailed(
                f"cannot load Google credentials: {type(exc).__name__}: {describe(exc)}"
            ) from None
        token = _snapshot(self._credentials)
        if token is None:
            raise AuthFailed("Google credentials refreshed without an access token")
        self.refreshes += 1
        remember_minted_secret(token.value)
        return token


def _snapshot(credentials: Credentials) -> _Token | None:
    token, expiry = credentials.token, credentials.expiry
    if not isinstance(token, str) or not token:
        return None
    if not isinstance(expiry, datetime.datetime):
        return _Token(token, None)
    if expiry.tzinfo is not None:
        expiry = expiry.astimezone(datetime.UTC).replace(tzinfo=None)
    return _Token(token, expiry)


def refresh_failure(exc: Exception) -> ProviderError:
    """The ProviderError for a google-auth RefreshError.

    A transport failure under it (the metadata server or token endpoint unreachable: Compute
    Engine credentials raise RefreshError from a TransportError) is a connection failure;
    google-auth marks token-endpoint answers worth retrying (5xx, ``internal_failure``) as
    retryable, a server error; everything else (``invalid_grant``: a revoked key, a wrong clock)
    is the credential's fault."""
    from google.auth import exceptions

    if any(isinstance(link, exceptions.TransportError) for link in _chain(exc)):
        return ConnectionFailed(f"Google token endpoint unreachable: {describe(exc)}")
    message = f"Google token refresh failed: {describe(exc)}"
    if getattr(exc, "retryable", False):
        return ServerError(message)
    return AuthFailed(message)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exceptions behind ``exc``: its causes and contexts, and one passed as its argument
    (``RefreshError(transport_error)``)."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        link = pending.pop()
        if id(link) in seen:
            continue
        seen.add(id(link))
        yield link
        pending.extend(x for x in (link.__cause__, link.__context__) if x is not None)
        pending.extend(arg for arg in link.args if isinstance(arg, BaseException))


_PRIVATE_KEY = re.compile(
    r"-----BEGIN[A-Z ]*PRIVATE KEY-----.*?(?:-----END[A-Z ]*PRIVATE KEY-----|$)", re.DOTALL
)
#: A JWT: a signed assertion, an ID token, a subject token.
_JWT = re.compile(r"eyJ[\w-]*\.[\w-]*\.[\w-]*")
#: Google access tokens (ya29.) and refresh tokens (1//).
_GOOGLE_TOKEN = re.compile(r"\bya29\.[\w.-]+|(?<![\w/])1//[\w.-]+")
_SECRET_FIELD = re.compile(
    r"""(?ix)
    ( ["']?(?:access_token|refresh_token|id_token|assertion|client_secret|private_key
             |subject_token)["']? \s* [:=] \s* )
    ( "[^"]*" | '[^']*' | [^\s&,;}]+ )
    """
)


def describe(exc: BaseException) -> str:
    """google-auth's error text, fit for an attempt log: its first argument when that is the
    text (a RefreshError's second is the whole endpoint reply), on one line, with anything that
    could be a credential (a key, a signed assertion, a token) cut out, then clipped."""
    first = exc.args[0] if exc.args else ""
    text = first if isinstance(first, str) else str(first) if first else str(exc)
    return clip(" ".join(scrub(text).split()))


def scrub(text: str) -> str:
    """``text`` with private keys, JWTs, Google tokens and credential fields replaced."""
    text = _PRIVATE_KEY.sub("[private key]", text)
    text = _SECRET_FIELD.sub(r"\1[hidden]", text)
    text = _JWT.sub("[jwt]", text)
    return _GOOGLE_TOKEN.sub("[token]", text)
