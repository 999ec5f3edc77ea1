"""Microsoft Entra ID tokens for Azure OpenAI, through azure-identity.

A deployment with ``auth: entra_id`` sends ``Authorization: Bearer <token>`` instead of
``api-key``, as the openai SDK's ``AzureOpenAI(azure_ad_token_provider=...)`` does, with a
token for ``https://cognitiveservices.azure.com/.default`` from ``DefaultAzureCredential``:
environment (a service principal's secret or certificate), workload identity, managed
identity (App Service, Arc, IMDS...), the Azure CLI, azd and PowerShell logins.

Why a cache of our own in front of azure-identity, which caches too: its chain is walked on
every ``get_token`` (each credential asked in turn until one answers), and a refresh happens
inside the caller's request. Here the token is kept until ``REFRESH_MARGIN`` before it expires
(or its ``refresh_on``, when the credential gives one), refreshed by one thread at a time while
the others keep using the current one, and a failure is remembered for a few seconds so a
broken credential is not asked again by every thread. A 401 drops the token it was sent with,
and only that one.

Errors become ProviderErrors with a clipped text free of tokens: an unavailable or refused
credential is auth (the route fails over like any whose key is wrong), an unreachable token
endpoint is a connection failure (retried).

azure-identity is imported on the first token request only: a worker without an Entra
deployment never needs it installed (it is the ``entra`` extra in pyproject.toml).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from routing.errors import AuthFailed, ConnectionFailed, ProviderError
from workers.providers.google_auth import scrub
from workers.providers.reading import clip
from workers.redaction import remember_minted_secret

log = logging.getLogger("turnout.azure_credentials")

#: The audience of Azure OpenAI (Azure AI services) tokens.
COGNITIVE_SERVICES_SCOPE = "https://cognitiveservices.azure.com/.default"
#: A token is refreshed this long before it expires.
REFRESH_MARGIN_S = 300.0
#: A token with less life than this is not handed out: the caller waits for the refresh.
MIN_VALIDITY_S = 30.0
#: How long a failed refresh is answered from memory.
FAILURE_COOLDOWN_S = 5.0

#: Makes the azure-identity credential (a ``TokenCredential``), on first use.
CredentialFactory = Callable[[], Any]


def default_credential() -> Any:
    """azure-identity's DefaultAzureCredential, interactive browser login excluded (its
    default): a worker has nobody to log in."""
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError as exc:
        raise AuthFailed(
            "auth: entra_id needs azure-identity: pip install 'turnout[entra]'"
        ) from exc
    return DefaultAzureCredential()


@dataclass(frozen=True)
class _Token:
    value: str
    #: Epoch seconds.
    expires_on: float
    #: Epoch seconds when the credential asks for a refresh (None: expiry minus the margin).
    refresh_on: float | None


class EntraTokenCache:
    """A bearer token for one Entra ID credential and scope, shared between threads."""

    def __init__(
        self,
        factory: CredentialFactory = default_credential,
        *,
        scope: str = COGNITIVE_SERVICES_SCOPE,
        margin_s: float = REFRESH_MARGIN_S,
        cooldown_s: float = FAILURE_COOLDOWN_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._factory = factory
        self.scope = scope
        self._margin_s = margin_s
        self._cooldown_s = cooldown_s
        self._clock = clock
        #: Held for a whole refresh: one at a time.
        self._lock = threading.Lock()
        #: Held only to swap ``_token``, so a 401's compare-and-clear never drops a token a
        #: refresh has just put in place.
        self._swap = threading.Lock()
        self._credential: Any = None
        self._token: _Token | None = None
        self._failure: tuple[type[ProviderError], str, float] | None = None
        #: How many tokens were obtained (what tests count).
        self.refreshes = 0

    def token(self) -> str:
        """A token with at least MIN_VALIDITY_S left, refreshed first when it is due."""
        current, now = self._token, self._clock()
        if current is not None and not self._due(current, now):
            return current.value
        usable = current is not None and current.expires_on - now > MIN_VALIDITY_S
        if usable and not self._lock.acquire(blocking=False):
            assert current is not None
            return current.value  # another thread is refreshing: keep using this one
        if not usable:
            self._lock.acquire()
        try:
            return self._refresh_holding_lock()
        finally:
            self._lock.release()

    def invalidate(self, token: str) -> bool:
        """Forget ``token`` (a 401 answered a call that carried it); a newer one is kept."""
        with self._swap:
            current = self._token
            if current is None or current.value != token:
                return False
            self._token = None
            return True

    def _due(self, token: _Token, now: float) -> bool:
        due_at = token.expires_on - self._margin_s
        if token.refresh_on is not None:
            due_at = min(due_at, token.refresh_on)
        return now >= due_at

    def _refresh_holding_lock(self) -> str:
        current, now = self._token, self._clock()
        if current is not None and not self._due(current, now):
            return current.value  # refreshed while this thread waited
        usable = (
            current if current is not None and current.expires_on - now > MIN_VALIDITY_S else None
        )
        failure = self._failure
        if failure is not None and time.monotonic() - failure[2] < self._cooldown_s:
            if usable is not None:
                return usable.value
            raise failure[0](failure[1])
        try:
            fresh = self._fetch()
        except ProviderError as exc:
            self._failure = (type(exc), exc.message, time.monotonic())
            if usable is None:
                raise
            log.warning("Entra ID token refresh failed; the current token is used: %s", exc.message)
            return usable.value
        self._failure = None
        with self._swap:
            self._token = fresh
        return fresh.value

    def _fetch(self) -> _Token:
        try:
            if self._credential is None:
                self._credential = self._factory()
            info = _token_info(self._credential, self.scope)
        except ProviderError:
            raise
        except Exception as exc:
            raise entra_failure(exc) from None
        remember_minted_secret(info.value)
        self.refreshes += 1
        return info


def _token_info(credential: Any, scope: str) -> _Token:
    """``get_token_info`` (azure-core's SupportsTokenInfo: it carries ``refresh_on``), else
    the older ``get_token``."""
    if hasattr(credential, "get_token_info"):
        info = credential.get_token_info(scope)
        refresh_on = getattr(info, "refresh_on", None)
        return _Token(
            info.token, float(info.expires_on), None if refresh_on is None else float(refresh_on)
        )
    token = credential.get_token(scope)
    return _Token(token.token, float(token.expires_on), None)


def entra_failure(exc: BaseException) -> ProviderError:
    """The ProviderError for an azure-identity failure: a token endpoint that cannot be
    reached is a connection failure; an unavailable or refused credential is auth."""
    from azure.core.exceptions import ServiceRequestError

    name = type(exc).__name__
    text = clip(" ".join(scrub(str(exc)).split()))
    if isinstance(exc, ServiceRequestError):
        return ConnectionFailed(f"Entra ID token endpoint unreachable: {text}")
    return AuthFailed(f"Entra ID token for Azure OpenAI: {name}: {text}")
