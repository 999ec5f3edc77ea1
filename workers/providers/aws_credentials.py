"""AWS credentials and region for Bedrock, as the AWS SDKs find them.

Credentials come from botocore's own session credential chain, never from a chain of our own:
static keys, the shared config and credentials files with ``AWS_PROFILE``, IAM Identity Center
(SSO), AssumeRole with ``source_profile`` or ``credential_source``, web identity, a
``credential_process``, container (ECS, EKS Pod Identity) and instance metadata credentials.
Temporary ones are botocore ``RefreshableCredentials``: ``get_frozen_credentials()`` refreshes
them before they expire (botocore's advisory window is 15 minutes, its mandatory one 10), so an
expiring session token is replaced before a call carries it, and is never an auth failure.
Frozen credentials are taken from botocore for every call and dropped after it: nothing here
keeps a secret past its expiry.

What differs from a plain ``botocore.session.Session()``, and why:

* the keys and the profile are read from turnout's settings, so a value in ``.env`` counts as
  it does for every other provider (botocore reads only the process environment); keys set
  that way come first, as botocore's environment provider does;
* the chain is resolved on the first call, not at import or start-up: it may ask the instance
  metadata service, which a worker must not wait for before it is even asked for Bedrock;
* "no credentials anywhere" is remembered for a few seconds, so a worker without any does not
  walk the whole chain (metadata timeouts included) on every call;
* every failure becomes a ProviderError whose text names the source, never a secret
  (a credential_process's own output is not repeated: it may print anything);
* each new secret key and session token is given to the log redactors as it appears.

A Bedrock API key (``AWS_BEARER_TOKEN_BEDROCK``) needs none of this: see ``bearer_token``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import SecretStr

from routing.errors import AuthFailed, ConfigError, ConnectionFailed, ProviderError, ServerError
from workers.providers.reading import clip
from workers.redaction import remember_minted_secret

if TYPE_CHECKING:
    from botocore.credentials import Credentials, ReadOnlyCredentials
    from botocore.session import Session

#: How long "botocore's chain found no credentials" is answered from memory.
NOTHING_FOUND_COOLDOWN_S = 30.0
#: Hosts a bearer token may be sent to over plain HTTP: this machine only (a simulator, a
#: local proxy). botocore refuses any http:// URL; a token sent in clear text is a leak.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

SessionFactory = Callable[[str | None], "Session"]


def botocore_session(profile: str | None) -> Session:
    """A botocore session for ``profile`` (None: botocore's own choice, AWS_PROFILE or
    ``default``)."""
    import botocore.session

    return botocore.session.Session(profile=profile)


@dataclass(frozen=True)
class StaticKeys:
    """Long-term or session keys given as variables (AWS_ACCESS_KEY_ID and friends)."""

    access_key_id: SecretStr
    secret_access_key: SecretStr
    session_token: SecretStr | None = None


class AwsCredentialChain:
    """Signing credentials for one Bedrock setup, safe to share between threads.

    ``frozen()`` is called for every request: botocore decides there whether temporary
    credentials need refreshing (and does it, one thread at a time)."""

    def __init__(
        self,
        *,
        profile: str | None = None,
        static: StaticKeys | None = None,
        session_factory: SessionFactory = botocore_session,
        cooldown_s: float = NOTHING_FOUND_COOLDOWN_S,
        refusal: str | None = None,
    ) -> None:
        self.profile = profile
        #: Why no call may be signed at all (half a key pair): raised on every call, so the
        #: worker still starts and serves its other routes.
        self._refusal = refusal
        self._static = static
        self._session_factory = session_factory
        self._cooldown_s = cooldown_s
        self._lock = threading.Lock()
        self._credentials: Credentials | None = None
        self._nothing_found_at: float | None = None
        #: The access key id last handed out: a new one means new secrets for the redactors.
        self._last_key_id: str | None = None

    @property
    def source(self) -> str:
        """Where the credentials come from, in words for logs and ``providers check``."""
        if self._static is not None:
            return "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        method = getattr(self._credentials, "method", None)
        where = f"profile {self.profile!r}" if self.profile else "botocore's credential chain"
        return f"{where} ({method})" if method else where

    def frozen(self) -> ReadOnlyCredentials:
        """The credentials to sign one request with, refreshed first when botocore says so.

        Raises AuthFailed (no credentials, a refused AssumeRole, an expired SSO login),
        ConnectionFailed (STS, SSO or the metadata service unreachable) or ServerError (STS
        throttled or failing): the call is failed over like any other whose auth failed."""
        if self._refusal is not None:
            raise AuthFailed(self._refusal)
        try:
            credentials = self._credentials or self._resolve()
            frozen = credentials.get_frozen_credentials()
        except ProviderError:
            raise
        except Exception as exc:  # botocore raises its own tree, ClientError and RuntimeError
            raise credential_failure(exc, self.source) from None
        if not frozen.access_key or not frozen.secret_key:
            raise AuthFailed(f"AWS credentials from {self.source} have no access key or secret")
        if frozen.access_key != self._last_key_id:
            remember_minted_secret(frozen.secret_key)
            if frozen.token:
                remember_minted_secret(frozen.token)
            self._last_key_id = frozen.access_key
        return frozen

    def _resolve(self) -> Credentials:
        with self._lock:
            if self._credentials is not None:
                return self._credentials
            if (at := self._nothing_found_at) is not None and time.monotonic() - at < (
                self._cooldown_s
            ):
                raise self._nothing_found()
            if self._static is not None:
                from botocore.credentials import Credentials

                token = self._static.session_token
                self._credentials = Credentials(
                    self._static.access_key_id.get_secret_value(),
                    self._static.secret_access_key.get_secret_value(),
                    None if token is None else token.get_secret_value(),
                    method="env",
                )
                return self._credentials
            found = self._session_factory(self.profile).get_credentials()
            if found is None:
                self._nothing_found_at = time.monotonic()
                raise self._nothing_found()
            self._credentials = found
            return found

    def _nothing_found(self) -> AuthFailed:
        where = f"profile {self.profile!r}" if self.profile else "botocore's credential chain"
        return AuthFailed(
            f"no AWS credentials found ({where}: environment, shared config and credentials "
            "files, SSO, AssumeRole, container and instance metadata); set AWS_PROFILE, the "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY pair or AWS_BEARER_TOKEN_BEDROCK"
        )


def static_keys(
    access_key_id: SecretStr | None,
    secret_access_key: SecretStr | None,
    session_token: SecretStr | None,
) -> StaticKeys | None:
    """The key pair when both halves are set; None when neither is (the chain decides).

    One half without the other is refused here, as botocore's PartialCredentialsError does,
    rather than quietly falling through to another source."""
    if access_key_id is None and secret_access_key is None:
        return None
    if access_key_id is None or secret_access_key is None:
        have, lack = (
            ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
            if secret_access_key is None
            else ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID")
        )
        raise ConfigError(f"{have} is set without {lack}: set both, or neither to use a profile")
    return StaticKeys(access_key_id, secret_access_key, session_token)


def credential_failure(exc: BaseException, source: str) -> ProviderError:
    """The ProviderError for a failure of botocore's chain: connection failures are
    connection, a throttled or failing STS is a server error, anything else is the
    credential's fault (auth). The text names the exception and, where botocore's message is
    safe to repeat, that message."""
    from botocore import exceptions as aws

    name = type(exc).__name__
    if isinstance(exc, aws.ConnectionError | aws.HTTPClientError):
        return ConnectionFailed(f"AWS credentials from {source}: cannot reach {_endpoint(exc)}")
    if isinstance(exc, aws.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", name))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        message = clip(f"AWS credentials from {source}: {code}: {error.get('Message', '')}")
        if code in ("Throttling", "ThrottlingException", "RequestLimitExceeded") or (
            isinstance(status, int) and status >= 500
        ):
            return ServerError(message, provider_code=code)
        return AuthFailed(message, provider_code=code)
    if isinstance(exc, aws.CredentialRetrievalError):
        # Its message repeats the credential_process's stderr, which may print anything.
        provider = getattr(exc, "kwargs", {}).get("provider", "a credential provider")
        return AuthFailed(f"AWS credentials from {source}: {provider} failed to return any")
    if isinstance(exc, aws.BotoCoreError):
        return AuthFailed(clip(f"AWS credentials from {source}: {name}: {exc}"))
    return AuthFailed(clip(f"AWS credentials from {source}: {name}"))


def _endpoint(exc: BaseException) -> str:
    kwargs: dict[str, Any] = getattr(exc, "kwargs", {}) or {}
    url = kwargs.get("endpoint_url")
    return str(url) if url else "the credential endpoint"


@dataclass(frozen=True)
class RegionChoice:
    """The region a Bedrock deployment uses and the setting it came from."""

    region: str
    source: str


def choose_region(
    deployment_region: str | None,
    variables: dict[str, str | None],
    profile_region: Callable[[], str | None],
) -> RegionChoice | None:
    """The deployment's ``region:``, else the first variable set (AWS_REGION, then LiteLLM's
    AWS_REGION_NAME, then botocore's AWS_DEFAULT_REGION), else the profile's ``region``;
    None when nothing names one. ``profile_region`` is only asked when needed: it reads the
    shared config file."""
    if deployment_region:
        return RegionChoice(deployment_region, "the deployment's region")
    for name, value in variables.items():
        if value:
            return RegionChoice(value, name)
    found = profile_region()
    return RegionChoice(found, "the profile's region") if found else None


def config_file_region(profile: str | None) -> str | None:
    """The ``region`` of the profile in the shared config file (botocore reads the file)."""
    from botocore.exceptions import BotoCoreError

    try:
        region = botocore_session(profile).get_config_variable("region")
    except BotoCoreError:
        return None
    return region if isinstance(region, str) and region else None


#: Variables that say a credential source of botocore's chain is configured here.
CHAIN_SIGNS = (
    "AWS_PROFILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
)


def missing_for_inventory(is_set: Callable[[str], bool]) -> list[str]:
    """What ``turnout providers`` lists as missing for Bedrock: nothing when a source is
    evident (an API key, a key pair, a profile, container or web-identity variables), the
    other half of a half-set key pair, else the choices. Instance metadata and a default
    profile are not looked for here: that would mean asking the metadata service."""
    pair = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    if is_set("AWS_BEARER_TOKEN_BEDROCK") or any(is_set(env) for env in CHAIN_SIGNS):
        return []
    if any(is_set(env) for env in pair):
        return [env for env in pair if not is_set(env)]
    return ["AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_BEARER_TOKEN_BEDROCK"]


def bearer_allowed(url: str) -> bool:
    """A bearer token goes only over HTTPS, or plain HTTP to this machine (see
    LOOPBACK_HOSTS)."""
    parts = urlsplit(url)
    return parts.scheme == "https" or (
        parts.scheme == "http" and (parts.hostname or "") in LOOPBACK_HOSTS
    )
