"""Hugging Face: Inference Providers (the router) and TGI / Inference Endpoints.

Both speak OpenAI's chat completions, as ``huggingface_hub.InferenceClient.chat_completion``
sends it (``huggingface_hub/inference/_providers/_common.py``, ``hf_inference.py``): the router
at ``https://router.huggingface.co/v1/chat/completions`` with the Hub model id in ``model``
(``meta-llama/Llama-3.1-8B-Instruct``, or ``...:novita`` to pin a provider), a TGI or an
Inference Endpoint at ``<its URL>/v1/chat/completions``; ``Authorization: Bearer $HF_TOKEN``,
``"stream": false`` in the body.

They differ from OpenAI where it matters for routing:

* the router refuses a model no enabled provider serves with a 400 ("... is not supported by
  any provider you have enabled", code ``model_not_supported``): the model, not the request;
* TGI answers ``{"error": "...", "error_type": "validation" | "generation" | "overloaded" |
  "incomplete_generation"}``: a prompt over the model's limit is a 422 validation error
  ("`inputs` tokens + `max_new_tokens` must be <= 4096"), a full queue a 429 ``overloaded``,
  a failed generation a 424; an Inference Endpoint scaled to zero answers 503 while it starts;
* the credential probe of the router is the Hub's ``GET /api/whoami-v2`` (free, what
  ``HfApi.whoami`` sends); a fine-grained token must also hold ``inference.serverless.write``
  ("Make calls to Inference Providers") or every call is refused. TGI's is ``GET /v1/models``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr

from routing.config import DeploymentConfig
from routing.errors import (
    ContextLength,
    ModelNotFound,
    Overloaded,
    PermissionDenied,
    ProviderError,
    ServerError,
)
from routing.models import CompletionRequest, ProviderCompletion
from workers.http import HttpCall, HttpReply
from workers.providers.base import deployment_base_url, deployment_key
from workers.providers.openai_compat import (
    OpenAICompatibleAdapter,
    classify_error,
    error_details,
)
from workers.providers.openai_messages import chat_body
from workers.providers.reading import clip, read_json
from workers.providers.retry_headers import parse_retry_after
from workers.settings import WorkerSettings

#: The Hub, when HF_ENDPOINT does not name another (huggingface_hub's constants.ENDPOINT).
HUB_ENDPOINT = "https://huggingface.co"
#: The fine-grained permission "Make calls to Inference Providers".
INFERENCE_PERMISSION = "inference.serverless.write"
#: huggingface_hub's InferenceClient does not retry.
DEFAULT_RETRIES = 0


class HuggingFaceAdapter(OpenAICompatibleAdapter):
    """Chat completions on the router (provider ``huggingface``) or a TGI (``tgi``)."""

    def __init__(
        self,
        deployment: DeploymentConfig,
        *,
        base_url: str,
        api_key: SecretStr | None,
        hub: str,
    ) -> None:
        super().__init__(deployment, base_url=base_url, api_key=api_key)
        self.default_retries = DEFAULT_RETRIES
        self.hub = hub.rstrip("/")

    @classmethod
    def from_settings(
        cls, deployment: DeploymentConfig, settings: WorkerSettings
    ) -> HuggingFaceAdapter:
        base_url = deployment_base_url(deployment, settings).rstrip("/")
        if not base_url.endswith("/v1"):
            base_url += "/v1"  # an endpoint's URL: its Messages API lives under /v1
        return cls(
            deployment,
            base_url=base_url,
            api_key=deployment_key(deployment, settings),
            hub=settings.hf_endpoint or HUB_ENDPOINT,
        )

    @property
    def _is_router(self) -> bool:
        return self.deployment.provider == "huggingface"

    def build_call(self, request: CompletionRequest) -> HttpCall:
        body = chat_body(request, self.deployment.model, "max_tokens")
        body["stream"] = False  # InferenceClient.chat_completion always sends it
        return HttpCall("POST", self.url, self._headers(), json.dumps(body).encode())

    def build_probe(self) -> HttpCall:
        headers = {k: v for k, v in self._headers().items() if k != "content-type"}
        if self._is_router:
            return HttpCall("GET", f"{self.hub}/api/whoami-v2", headers, b"")
        return HttpCall("GET", f"{self.base_url}/models", headers, b"")

    def read_probe(self, reply: HttpReply) -> None:
        if reply.status != 200:
            raise classify_hf_error(
                self.deployment.provider, reply.status, reply.body, reply.headers
            )
        if self._is_router:
            missing = _missing_inference_permission(read_json(reply.body))
            if missing:
                raise PermissionDenied(
                    "the token is valid but fine-grained without the permission "
                    f'"Make calls to Inference Providers" ({INFERENCE_PERMISSION})',
                    status_code=200,
                )

    def parse_reply(self, reply: HttpReply) -> ProviderCompletion:
        if reply.status != 200:
            raise classify_hf_error(
                self.deployment.provider, reply.status, reply.body, reply.headers
            )
        return super().parse_reply(reply)


def _missing_inference_permission(whoami: dict[str, Any]) -> bool:
    auth = whoami.get("auth")
    token = auth.get("accessToken") if isinstance(auth, dict) else None
    if not isinstance(token, dict) or token.get("role") != "fineGrained":
        return False
    granted = token.get("fineGrained")
    permissions = granted.get("global") if isinstance(granted, dict) else None
    return isinstance(permissions, list) and INFERENCE_PERMISSION not in permissions


def classify_hf_error(
    provider: str, status: int, body: bytes, headers: Mapping[str, str]
) -> ProviderError:
    """The router's and TGI's quirks first, then the OpenAI family's table."""
    message, code = error_details(body)
    error_type = _tgi_error_type(body)
    lowered = message.lower()
    details: dict[str, Any] = {
        "status_code": status,
        "retry_after_s": parse_retry_after(headers),
        "provider_code": code or error_type,
    }
    text = f"{status} from {provider}: {clip(message)}"
    if status == 400 and (
        code == "model_not_supported" or "not supported by any provider" in lowered
    ):
        return ModelNotFound(text, **details)
    if status == 422 and error_type == "validation" and "must be <=" in lowered:
        return ContextLength(text, **details)
    if status == 424 or error_type in ("generation", "incomplete_generation"):
        return ServerError(text, **details)
    if status == 429 and error_type == "overloaded":
        return Overloaded(text, **details)
    error = classify_error(provider, status, body, headers)
    if error.provider_code is None:
        error.provider_code = error_type  # TGI names its kind of error, not a code
    return error


def _tgi_error_type(body: bytes) -> str | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    value = data.get("error_type") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None
