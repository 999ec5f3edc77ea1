"""Gemini through its two front doors: the Gemini API (AI Studio) and Vertex AI
(../shared/providers.md §5, §6). Both speak generateContent with the same request, response and
google.rpc error shapes; they differ in URL and credentials, so everything but those is shared.

The wire format they share is in workers.providers.genai_wire.
"""

from __future__ import annotations

import json
import threading
from urllib.parse import urlsplit

from pydantic import SecretStr

from routing.config import DeploymentConfig
from routing.errors import (
    ConfigError,
    InvalidResponse,
    ProviderError,
)
from routing.models import CompletionRequest, ProviderCompletion
from workers.http import HttpCall, HttpReply
from workers.providers.base import USER_AGENT, deployment_base_url, deployment_key
from workers.providers.genai_wire import (
    classify_error,
    generate_content_body,
    parse_generate_content,
)
from workers.providers.google_auth import AccessTokenCache, credentials_loader
from workers.providers.reading import read_json, snippet
from workers.settings import WorkerSettings


class _GenerateContentAdapter:
    """What both front doors share: the body, the reply and the errors."""

    def __init__(
        self, deployment: DeploymentConfig, *, retries: int, minimum_thinking: bool
    ) -> None:
        self.deployment = deployment
        self.default_retries = retries
        self._minimum_thinking = minimum_thinking

    def _body(self, request: CompletionRequest) -> bytes:
        body = generate_content_body(
            request, self.deployment.model, minimum_thinking=self._minimum_thinking
        )
        return json.dumps(body).encode()

    def _error(self, reply: HttpReply) -> ProviderError:
        return classify_error(self.deployment.provider, reply.status, reply.body, reply.headers)

    def parse_reply(self, reply: HttpReply) -> ProviderCompletion:
        if reply.status != 200:
            raise self._error(reply)
        return parse_generate_content(reply.body)

    def read_probe(self, reply: HttpReply) -> None:
        if reply.status != 200:
            raise self._error(reply)
        if not isinstance(read_json(reply.body), dict):
            raise InvalidResponse(f"probe answered 200 with {snippet(reply.body)}", status_code=200)


class GeminiAdapter(_GenerateContentAdapter):
    """The Gemini API: ``x-goog-api-key`` in a header, never ``?key=`` (URLs end up in logs)."""

    def __init__(
        self,
        deployment: DeploymentConfig,
        *,
        base_url: str,
        api_key: SecretStr | None,
        retries: int = 5,
        minimum_thinking: bool = False,
    ) -> None:
        super().__init__(deployment, retries=retries, minimum_thinking=minimum_thinking)
        self.base_url = base_url.rstrip("/")
        model = deployment.model
        name = model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"
        self.url = f"{self.base_url}/{name}:generateContent"
        self._api_key = api_key

    @classmethod
    def from_settings(cls, deployment: DeploymentConfig, settings: WorkerSettings) -> GeminiAdapter:
        return cls(
            deployment,
            base_url=deployment_base_url(deployment, settings),
            api_key=deployment_key(deployment, settings),
            retries=settings.gemini_max_retries,
            minimum_thinking=settings.gemini_force_minimum_thinking_budget,
        )

    def _headers(self) -> dict[str, str]:
        headers = {"accept": "application/json", "user-agent": USER_AGENT}
        if self._api_key is not None:
            headers["x-goog-api-key"] = self._api_key.get_secret_value()
        return headers

    def build_call(self, request: CompletionRequest) -> HttpCall:
        headers = {"content-type": "application/json", **self._headers()}
        return HttpCall("POST", self.url, headers, self._body(request))

    def build_probe(self) -> HttpCall:
        """``GET /models?pageSize=1``: proves the key without spending a token."""
        return HttpCall("GET", f"{self.base_url}/models?pageSize=1", self._headers(), b"")


#: The location served by aiplatform.googleapis.com, with no region in the host.
GLOBAL_LOCATION = "global"


def vertex_base_url(location: str, override: str | None = None) -> str:
    """Scheme and host (plus any proxy path prefix) in front of ``/v1/projects/...``.

    ``global`` is served by aiplatform.googleapis.com, the multi-regions ``us`` and ``eu`` by
    aiplatform.{loc}.rep.googleapis.com, a region by {loc}-aiplatform.googleapis.com (as
    python-genai does). An override (VERTEX_BASE_URL, a deployment's base_url) replaces them;
    a trailing /v1 on it is dropped so both spellings work."""
    if override:
        parts = urlsplit(override.rstrip("/"))
        path = parts.path[: -len("/v1")] if parts.path.endswith("/v1") else parts.path
        return f"{parts.scheme}://{parts.netloc}{path}"
    if location == GLOBAL_LOCATION:
        return "https://aiplatform.googleapis.com"
    if location in ("us", "eu"):
        return f"https://aiplatform.{location}.rep.googleapis.com"
    return f"https://{location}-aiplatform.googleapis.com"


def vertex_model_path(project: str, location: str, model: str) -> str:
    """The model's resource path: a bare name is a Google publisher model; ``publishers/...``
    is put under the project and location; ``projects/...`` is used as given."""
    if model.startswith("projects/"):
        return model
    if model.startswith("models/"):
        model = model[len("models/") :]
    resource = model if model.startswith("publishers/") else f"publishers/google/models/{model}"
    return f"projects/{project}/locations/{location}/{resource}"


class VertexAdapter(_GenerateContentAdapter):
    """Vertex AI: an OAuth2 bearer token from google-auth, cached and refreshed by
    ``AccessTokenCache`` (one refresh at a time, 5 minutes before expiry).

    A 401 drops the cached token only if it is the one the rejected call carried: each thread
    remembers the token it last put on a call, because the reply is parsed on the thread that
    built the call (workers.runtime, workers.providers.inventory) and ``HttpReply`` does not
    carry the request. A late 401 for an old token thus leaves a freshly minted one alone."""

    def __init__(
        self,
        deployment: DeploymentConfig,
        *,
        project: str,
        location: str,
        tokens: AccessTokenCache,
        base_url: str | None = None,
        retries: int = 5,
        minimum_thinking: bool = False,
    ) -> None:
        super().__init__(deployment, retries=retries, minimum_thinking=minimum_thinking)
        self.base_url = vertex_base_url(location, base_url)
        model_url = f"{self.base_url}/v1/{vertex_model_path(project, location, deployment.model)}"
        self.url = f"{model_url}:generateContent"
        self.probe_url = f"{model_url}:countTokens"
        self.tokens = tokens
        self._sent = threading.local()

    @classmethod
    def from_settings(cls, deployment: DeploymentConfig, settings: WorkerSettings) -> VertexAdapter:
        """The location is the deployment's ``location:``, else GOOGLE_CLOUD_LOCATION, else
        ``global`` (google-genai's default when none is given: Gemini 3 is served there)."""
        project = settings.google_cloud_project
        location = deployment.location or settings.google_cloud_location or GLOBAL_LOCATION
        if not project:
            raise ConfigError(
                f"deployment {deployment.id}: Vertex AI needs GOOGLE_CLOUD_PROJECT; fix: export "
                "it (or add it to .env)"
            )
        return cls(
            deployment,
            project=project,
            location=location,
            tokens=AccessTokenCache(credentials_loader(settings.google_application_credentials)),
            base_url=deployment_base_url(deployment, settings) or None,
            retries=settings.gemini_max_retries,
            minimum_thinking=settings.gemini_force_minimum_thinking_budget,
        )

    def _headers(self) -> dict[str, str]:
        token = self.tokens.token()
        headers = {
            "content-type": "application/json",
            "accept": "application/json",
            "user-agent": USER_AGENT,
            "authorization": f"Bearer {token}",
        }
        if (quota_project := self.tokens.quota_project_id) is not None:
            headers["x-goog-user-project"] = quota_project
        self._sent.token = token
        return headers

    def build_call(self, request: CompletionRequest) -> HttpCall:
        return HttpCall("POST", self.url, self._headers(), self._body(request))

    def build_probe(self) -> HttpCall:
        """``countTokens`` for one word: checks token, project, location, IAM and model at once."""
        body = {"contents": [{"role": "user", "parts": [{"text": "ping"}]}]}
        return HttpCall("POST", self.probe_url, self._headers(), json.dumps(body).encode())

    def _error(self, reply: HttpReply) -> ProviderError:
        if reply.status == 401:
            self._reject_sent_token()
        return super()._error(reply)

    def _reject_sent_token(self) -> None:
        """The provider refused the token this thread last sent (revoked, or rejected): drop it
        from the cache unless a newer one replaced it, so the next call mints a new one."""
        sent: str | None = getattr(self._sent, "token", None)
        if sent is not None:
            self.tokens.invalidate(sent)
