"""OAuth2 access tokens for Vertex AI: google-auth mints them, this module decides when.

google-auth knows how to get a token (a service account's JWT-bearer grant, or application
default credentials) but not how a worker with hundreds of threads should hold one. Here:

* one token per cache, shared by every thread that builds a call;
* refreshed ``REFRESH_MARGIN`` (5 minutes) before it expires, so a call never leaves with a
  token that dies on the way (google-auth's own ``expired`` keeps only 3m45s of margin);
* one refresh at a time: while it runs, threads with a still-valid token keep using it, and
  threads without one wait for it instead of minting their own;
* nothing is loaded or fetched until the first call: ``google.auth.default()`` may probe the
  metadata server, which a worker must not do at import or start-up;
* every failure becomes a ProviderError, so a Vertex deployment whose credentials are broken is
  failed over like any other (auth), and a token endpoint that is down is retried (server_error,
  connection).

google.auth is imported inside functions: a worker that only calls the Gemini API never loads it.
"""

from __future__ import annotations

import datetime
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from routing.errors import AuthFailed, ConnectionFailed, ProviderError, ServerError

if TYPE_CHECKING:
    from google.auth.credentials import Credentials
    from google.auth.transport import Request

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
REFRESH_MARGIN = datetime.timedelta(minutes=5)
#: A token with less life left than this is not handed out: the caller waits for the refresh.
MIN_VALIDITY = datetime.timedelta(seconds=30)
#: Per HTTP request to the token endpoint (google-auth's own default is 120 s, and it retries).
REFRESH_TIMEOUT_S = 10.0

CredentialsLoader = Callable[[], "Credentials"]


def credentials_loader(credentials_file: str | None) -> CredentialsLoader:
    """How to load this deployment's credentials: the service-account file named by
    GOOGLE_APPLICATION_CREDENTIALS, else application default credentials (gcloud, metadata
    server, workload identity), both scoped to cloud-platform. Either way google-auth's
    GOOGLE_CLOUD_QUOTA_PROJECT applies (``google.auth.default`` reads it; a key file does not
    name a quota project, so it is applied to one too)."""

    def load() -> Credentials:
        if credentials_file:
            from google.oauth2 import service_account

            loaded = service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
                credentials_file, scopes=[CLOUD_PLATFORM_SCOPE]
            )
            return loaded.with_quota_project_from_environment()  # type: ignore[no-any-return]
        import google.auth

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


class AccessTokenCache:
    """A bearer token for one set of Google credentials, safe to share between threads."""

    def __init__(
        self,
        load: CredentialsLoader,
        *,
        request: Request | None = None,
        margin: datetime.timedelta = REFRESH_MARGIN,
        now: Callable[[], datetime.datetime] = utcnow,
    ) -> None:
        self._load = load
        self._request = request
        self._margin = margin
        self._now = now
        self._lock = threading.Lock()
        self._credentials: Credentials | None = None
        self._token: _Token | None = None
        #: How many times a token was minted (what the concurrency tests count).
        self.refreshes = 0

    @property
    def quota_project_id(self) -> str | None:
        """The quota project the credentials carry (sent as ``x-goog-user-project``)."""
        project = getattr(self._credentials, "quota_project_id", None)
        return project if isinstance(project, str) and project else None

    def token(self) -> str:
        """A token with at least MIN_VALIDITY of life left, refreshed first when it is within
        the margin of its expiry. Raises AuthFailed, ServerError or ConnectionFailed."""
        current = self._token
        now = self._now()
        if current is not None and not self._due(current, now):
            return current.value
        if current is not None and self._usable(current, now):
            if not self._lock.acquire(blocking=False):
                return current.value  # another thread is refreshing; this one still works
        else:
            self._lock.acquire()
        try:
            current = self._token
            if current is not None and not self._due(current, self._now()):
                return current.value  # refreshed while this thread waited
            current = self._refresh()
            self._token = current
            return current.value
        finally:
            self._lock.release()

    def invalidate(self) -> None:
        """Forget the token (the provider answered 401): the next call mints a new one."""
        self._token = None

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
                    return adopted  # credentials that came with a good token
            if self._request is None:
                self._request = bounded_request()
            self._credentials.refresh(self._request)  # type: ignore[no-untyped-call]
        except exceptions.RefreshError as exc:
            raise _refresh_failure(exc) from None
        except exceptions.TransportError as exc:
            raise ConnectionFailed(f"Google token endpoint unreachable: {exc}") from None
        except (exceptions.GoogleAuthError, OSError, ValueError, KeyError) as exc:
            raise AuthFailed(
                f"cannot load Google credentials: {type(exc).__name__}: {exc}"
            ) from None
        token = _snapshot(self._credentials)
        if token is None:
            raise AuthFailed("Google credentials refreshed without an access token")
        self.refreshes += 1
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


def _refresh_failure(exc: Exception) -> ProviderError:
    """google-auth marks token-endpoint failures worth retrying (5xx, ``internal_failure``);
    everything else (``invalid_grant``: a revoked key, a wrong clock) is the credential's fault."""
    message = f"Google token refresh failed: {exc}"
    if getattr(exc, "retryable", False):
        return ServerError(message)
    return AuthFailed(message)
