"""Azure OpenAI chat completions, classic and v1 (../shared/providers.md §3).

Azure serves OpenAI's request and success shapes on its own URLs, with its own key header and
its own error quirks, so this adapter reuses ``openai_compat`` for bodies and parsing and adds
only what differs:

* **v1**, the default (``AZURE_API_VERSION`` unset or ``v1``)::

      POST {endpoint}/openai/v1/chat/completions          (no api-version)

  ``model`` in the body is the deployment name. It serves every model, the reasoning ones
  included; Microsoft's docs (learn.microsoft.com, azure/foundry/openai/api-version-lifecycle)
  address it with the plain ``OpenAI`` client and ``base_url={endpoint}/openai/v1/``, no
  api-version (the SDK's ``AzureOpenAI`` always adds one, from ``OPENAI_API_VERSION`` if need
  be, so it speaks only the classic surface).
* **Classic** (``AZURE_API_VERSION`` is a dated version, such as ``2024-10-21``)::

      POST {endpoint}/openai/deployments/{deployment}/chat/completions?api-version={version}

  The body is OpenAI's, ``model`` included: the openai SDK's ``AzureOpenAI`` sends the
  deployment name there too (and routes on it), so we send exactly what it sends. Reasoning
  models (o-series, gpt-5) answer versions before ``2024-12-01-preview`` with 400 "Model o3 is
  enabled only for api versions 2024-12-01-preview and later" (model_not_found: this deployment
  as configured serves nothing). The models-list probe passes at any version, so the probe also
  asks the model table (``base_model`` for a deployment named otherwise) and fails, without a
  billed call, where the jobs' calls would. A deployment the table cannot name (no
  ``base_model``, a name of its own) is not caught: the data plane offers no free request that
  goes through the model's api-version gate (a chat call does, and is billed when it passes).

Both authenticate with ``api-key: <key>``, or, for a deployment with ``auth: entra_id``, with
``Authorization: Bearer <Entra ID token>`` (workers.providers.azure_credentials), the header the
openai SDK's ``azure_ad_token_provider`` sends, and no ``api-key``. On v1 Microsoft's Python
sample uses the plain ``OpenAI`` client, which sends the key as ``Authorization: Bearer``;
that the key is accepted that way is inferred, not documented (providers.md §20), while
Microsoft's v1 REST samples send ``api-key``. The documented header, the same on both surfaces,
is the one that cannot surprise.

Error classes are OpenAI's (``classify_error``) plus Azure's quirks (``classify_azure_error``):
a prompt blocked by the content filter is a 400 (``content_filter`` /
``ResponsibleAIPolicyViolation``); a wrong or unsupported api-version is a 400 or a 404, which
we classify as ``model_not_found``: the request is fine, this deployment as configured cannot
serve anything, so the job fails over (``bad_request`` would fail it everywhere), and the
credential check reports it as "wrong region or version".
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Mapping

from pydantic import SecretStr

from routing.config import DeploymentConfig
from routing.errors import ConfigError, ErrorClass, ModelNotFound, ProviderError, provider_error
from routing.models import CompletionRequest, ProviderCompletion
from workers.http import HttpCall, HttpReply
from workers.providers.azure_credentials import EntraTokenCache
from workers.providers.base import USER_AGENT, deployment_base_url, deployment_key
from workers.providers.openai_compat import (
    DEFAULT_RETRIES,
    classify_error,
    error_details,
    parse_chat_completion,
)
from workers.providers.openai_messages import chat_body
from workers.settings import WorkerSettings

#: The ``AZURE_API_VERSION`` value that selects the v1 API.
V1 = "v1"

#: Suffixes an endpoint is sometimes given with; the adapter adds the path itself.
_ENDPOINT_SUFFIXES = ("/openai/v1", "/openai")

#: Words in a 400/404 that blame the api-version rather than the request: "API version not
#: supported", "invalid_api_version", "Model x is enabled only for api versions 2024-12-01-preview
#: and later" (all [obs] in public issue threads).
_VERSION_MARKERS = ("api version", "api-version", "apiversion", "invalid_api_version")

#: The first dated api-version that serves reasoning models (o-series, gpt-5).
REASONING_MIN_VERSION = "2024-12-01-preview"

#: Azure's verdicts on the prompt by its content filter (providers.md §3.1).
_CONTENT_FILTER_CODES = frozenset({"content_filter", "ResponsibleAIPolicyViolation"})


class AzureOpenAIAdapter:
    """Builds Azure OpenAI chat-completion calls for one deployment and reads their replies."""

    def __init__(
        self,
        deployment: DeploymentConfig,
        *,
        endpoint: str,
        api_key: SecretStr | None,
        api_version: str,
        entra_tokens: EntraTokenCache | None = None,
    ) -> None:
        self.deployment = deployment
        #: Set for ``auth: entra_id``: the token replaces the key.
        self.entra_tokens = entra_tokens
        self._sent = threading.local()
        self.default_retries = DEFAULT_RETRIES
        self.endpoint = azure_endpoint(endpoint)
        self.api_version = api_version.strip()
        self.is_v1 = self.api_version.lower() == V1
        self._api_key = api_key
        if self.is_v1:
            self.url = f"{self.endpoint}/openai/v1/chat/completions"
            self.probe_url = f"{self.endpoint}/openai/v1/models"
        else:
            query = urllib.parse.urlencode({"api-version": self.api_version})
            name = urllib.parse.quote(deployment.model, safe="")
            self.url = f"{self.endpoint}/openai/deployments/{name}/chat/completions?{query}"
            # The configured version, not a fixed one: the credential check then also proves
            # that the version the jobs will use exists.
            self.probe_url = f"{self.endpoint}/openai/models?{query}"

    @classmethod
    def from_settings(
        cls, deployment: DeploymentConfig, settings: WorkerSettings
    ) -> AzureOpenAIAdapter:
        endpoint = deployment_base_url(deployment, settings)
        if not endpoint:
            raise ConfigError(
                f"deployment {deployment.id}: set AZURE_BASE_URL (or the deployment's base_url) "
                "to the resource endpoint, https://<resource>.openai.azure.com"
            )
        entra = deployment.auth == "entra_id"
        return cls(
            deployment,
            endpoint=endpoint,
            api_key=None if entra else deployment_key(deployment, settings),
            api_version=settings.azure_api_version,
            entra_tokens=EntraTokenCache() if entra else None,
        )

    def _headers(self) -> dict[str, str]:
        headers = {
            "content-type": "application/json",
            "accept": "application/json",
            "user-agent": USER_AGENT,
        }
        if self.entra_tokens is not None:
            token = self.entra_tokens.token()
            headers["authorization"] = f"Bearer {token}"
            self._sent.token = token
        elif self._api_key is not None:
            headers["api-key"] = self._api_key.get_secret_value()
        return headers

    def build_call(self, request: CompletionRequest) -> HttpCall:
        body = chat_body(
            request,
            self.deployment.model,
            self.deployment.spec.max_tokens_field,
            extra_body=self.deployment.extra_body,
        )
        return HttpCall("POST", self.url, self._headers(), json.dumps(body).encode())

    def parse_reply(self, reply: HttpReply) -> ProviderCompletion:
        if reply.status != 200:
            raise self._error(reply)
        return parse_chat_completion(reply.body)

    def _error(self, reply: HttpReply) -> ProviderError:
        """Azure's error; a 401 to an Entra ID token also drops that token (unless a newer one
        replaced it), so the next call gets a fresh one. The reply is read on the thread that
        built the call, which remembers the token it sent."""
        sent: str | None = getattr(self._sent, "token", None)
        if reply.status == 401 and self.entra_tokens is not None and sent is not None:
            self.entra_tokens.invalidate(sent)
        return classify_azure_error(reply.status, reply.body, reply.headers)

    def build_probe(self) -> HttpCall:
        """The models list of the resource: proves the key, the endpoint and the api-version,
        not the deployment (listing deployments is the management plane's business)."""
        headers = {k: v for k, v in self._headers().items() if k != "content-type"}
        return HttpCall("GET", self.probe_url, headers, b"")

    def read_probe(self, reply: HttpReply) -> None:
        if reply.status != 200:
            raise self._error(reply)
        too_old = self.version_refuses_model()
        if too_old is not None:
            raise ModelNotFound(too_old, status_code=None)

    def version_refuses_model(self) -> str | None:
        """Why the configured api-version cannot serve this deployment's model (a reasoning
        model before 2024-12-01-preview), or None. The models list answers 200 at any version;
        the calls would not."""
        if self.is_v1 or not self.deployment.model_capabilities.reasoning:
            return None
        if _version_date(self.api_version) >= _version_date(REASONING_MIN_VERSION):
            return None
        return (
            f"AZURE_API_VERSION {self.api_version} cannot serve {self.deployment.model}, a "
            f"reasoning model: Azure serves it only at api versions {REASONING_MIN_VERSION} and "
            "later; unset AZURE_API_VERSION (the v1 API) or set a later version"
        )


def _version_date(version: str) -> str:
    """``2024-10-21`` of ``2024-10-21`` and of ``2024-10-01-preview``: dates compare as text."""
    return version[:10]


def azure_endpoint(base_url: str) -> str:
    """The resource endpoint, whether it was given bare or with ``/openai`` or ``/openai/v1``
    (the forms the SDKs' samples use), so either works in AZURE_BASE_URL."""
    endpoint = base_url.strip().rstrip("/")
    for suffix in _ENDPOINT_SUFFIXES:
        if endpoint.endswith(suffix):
            return endpoint[: -len(suffix)]
    return endpoint


def classify_azure_error(status: int, body: bytes, headers: Mapping[str, str]) -> ProviderError:
    """OpenAI's classification (``classify_error``), corrected where Azure means otherwise."""
    error = classify_error("azure", status, body, headers)
    message, code = error_details(body)
    inner = _inner_code(body)
    lowered = f"{code or ''} {message}".lower()
    if status == 400 and (code in _CONTENT_FILTER_CODES or inner in _CONTENT_FILTER_CODES):
        return _reclassified(error, ErrorClass.CONTENT_POLICY)
    if status in (400, 404) and any(marker in lowered for marker in _VERSION_MARKERS):
        return _reclassified(error, ErrorClass.MODEL_NOT_FOUND)
    if status == 400 and code == "OperationNotSupported":
        # "The chatCompletion operation does not work with the specified model": the deployment
        # holds an embeddings (or other) model. Another deployment can serve the request.
        return _reclassified(error, ErrorClass.MODEL_NOT_FOUND)
    return error


def _reclassified(error: ProviderError, error_class: ErrorClass) -> ProviderError:
    if error.error_class is error_class:
        return error
    return provider_error(
        error_class,
        error.message,
        status_code=error.status_code,
        retry_after_s=error.retry_after_s,
        provider_code=error.provider_code,
        should_retry=error.should_retry,
    )


def _inner_code(body: bytes) -> str | None:
    """``error.innererror.code`` (``ResponsibleAIPolicyViolation``), when the body has one."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    error = data.get("error") if isinstance(data, dict) else None
    inner = error.get("innererror") if isinstance(error, dict) else None
    code = inner.get("code") if isinstance(inner, dict) else None
    return code if isinstance(code, str) else None
