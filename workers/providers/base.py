"""What every provider adapter offers: pure request building and reply parsing, for the job's
call and for the credential probe. Adapters do no I/O; ``workers.http`` sends what they build.
(Signing is not I/O: Bedrock signs and Vertex adds a cached OAuth2 token in ``build_call``.)"""

from __future__ import annotations

from typing import Protocol

from pydantic import SecretStr

from routing.catalog import resolve_base_url
from routing.config import DeploymentConfig
from routing.models import CompletionRequest, ProviderCompletion
from workers.http import HttpCall, HttpReply
from workers.settings import WorkerSettings

USER_AGENT = "turnout/0.1"


class ProviderAdapter(Protocol):
    deployment: DeploymentConfig
    #: Retries on this deployment when the job's policy names none: the provider SDK's default,
    #: or the provider's *_MAX_RETRIES variable.
    default_retries: int

    def build_call(self, request: CompletionRequest) -> HttpCall:
        """The provider's request for this completion, credentials included."""
        ...

    def parse_reply(self, reply: HttpReply) -> ProviderCompletion:
        """The completion; raises the ProviderError of the reply's error class otherwise."""
        ...

    def build_probe(self) -> HttpCall:
        """The provider's cheapest authenticated request (a models list, a token count)."""
        ...

    def read_probe(self, reply: HttpReply) -> None:
        """Return when the probe proved the credentials; raise the ProviderError otherwise."""
        ...


class AdapterFactory(Protocol):
    def __call__(
        self, deployment: DeploymentConfig, settings: WorkerSettings
    ) -> ProviderAdapter: ...


def deployment_base_url(deployment: DeploymentConfig, settings: WorkerSettings) -> str:
    """The deployment's ``base_url``, else its provider's base-URL variable, else the default."""
    spec = deployment.spec
    from_env = settings.value_of(spec.base_url_env) if spec.base_url_env else None
    return resolve_base_url(spec, deployment.base_url, from_env)


def deployment_key(deployment: DeploymentConfig, settings: WorkerSettings) -> SecretStr | None:
    """The deployment's API key, still wrapped: it is unwrapped only into a request header."""
    key = settings.value_of(deployment.key_env) if deployment.key_env else None
    return SecretStr(key) if key else None


def bearer_headers(api_key: SecretStr | None, *, with_body: bool) -> dict[str, str]:
    """JSON headers with ``Authorization: Bearer`` when there is a key."""
    headers = {"accept": "application/json", "user-agent": USER_AGENT}
    if with_body:
        headers["content-type"] = "application/json"
    if api_key is not None:
        headers["authorization"] = f"Bearer {api_key.get_secret_value()}"
    return headers
