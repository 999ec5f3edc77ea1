"""A simulated Azure OpenAI resource (../shared/providers.md §3), classic and v1 surfaces.

Paths, as a resource at ``https://<resource>.openai.azure.com`` serves them:

    POST /openai/deployments/{deployment}/chat/completions?api-version=...   classic
    GET  /openai/models?api-version=...                                      classic probe
    POST /openai/v1/chat/completions                                         v1 (model = deployment)
    GET  /openai/v1/models                                                   v1 probe

What it reproduces, because a client must handle it:

* Entra ID (``identity_header`` set): a managed-identity token endpoint at ``/msi/token``, and
  ``Authorization: Bearer`` with the tokens it issued, refused with Azure's 401 once expired.
* Auth by ``api-key``. On v1 also ``Authorization: Bearer <key>``: Microsoft's v1 sample uses
  the plain OpenAI client, which sends the key that way. A missing or wrong key answers 401 with
  Azure's ``{"error": {"code": "401", ...}}``.
* api-version on the classic surface: missing -> 404 ``Resource not found``; unknown -> 400
  ``{"code": "BadRequest", "message": "API version not supported"}`` (both [obs] in public issue
  threads). v1 needs none, and tolerates the ``preview`` its early samples sent.
* Deployments: when started with ``models``, those are the deployments and any other answers 404
  ``DeploymentNotFound``; without, every deployment exists.
* Success bodies are OpenAI's plus ``prompt_filter_results`` and per-choice
  ``content_filter_results``. A prompt containing ``FILTER_OUTPUT_MARKER`` gets what Azure sends
  when the output is filtered: 200, ``finish_reason: "content_filter"``, no content.
* Injected failures in Azure's envelopes: 400 is the prompt content-filter body of §3.1, 404 is
  DeploymentNotFound, 429 carries both ``retry-after`` (whole seconds) and ``retry-after-ms``.
  The 403/500/503 wording is plausible, not verified.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import uuid
from typing import Any

from ops.simulator.base import Endpoint, Incoming, Reply, retry_after_headers
from ops.simulator.faults import Faults
from ops.simulator.model_refusals import is_openai_reasoning
from ops.simulator.openai_sim import OpenAISimulator

#: A prompt containing this is answered as if the content filter withheld the output.
FILTER_OUTPUT_MARKER = "[sim:filter-output]"

#: Dated api-versions the simulator knows (GA and previews from the api-version lifecycle page).
API_VERSIONS = frozenset(
    {
        "2022-12-01",
        "2023-05-15",
        "2024-02-01",
        "2024-06-01",
        "2024-10-21",
        "2024-08-01-preview",
        "2024-09-01-preview",
        "2024-10-01-preview",
        "2024-12-01-preview",
        "2025-01-01-preview",
        "2025-02-01-preview",
        "2025-03-01-preview",
        "2025-04-01-preview",
    }
)
#: What v1 accepts in api-version: nothing, or the "preview" of its first samples.
V1_API_VERSIONS = frozenset({"preview", "v1"})

CLASSIC_PREFIX = "/openai/deployments/"
#: The first dated api-version that serves reasoning models (o-series, gpt-5).
REASONING_MIN_VERSION = "2024-12-01-preview"
V1_PREFIX = "/openai/v1"
DEFAULT_RETRY_AFTER_S = 1.0

WRONG_KEY = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
    "valid key for an active subscription and use a correct regional API endpoint for your "
    "resource."
)
MISSING_KEY = (
    "Access denied due to missing subscription key. Make sure to include subscription key when "
    "making requests to an API."
)
DEPLOYMENT_NOT_FOUND = (
    "The API deployment for this resource does not exist. If you created the deployment within "
    "the last 5 minutes, please wait a moment and try again."
)
PROMPT_FILTERED = (
    "The response was filtered due to the prompt triggering Azure OpenAI's content management "
    "policy. Please modify your prompt and retry. To learn more about our content filtering "
    "policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766"
)

#: Where the simulated App Service managed-identity endpoint answers (IDENTITY_ENDPOINT).
MSI_TOKEN_PATH = "/msi/token"  # noqa: S105 (a path, not a password)
COGNITIVE_SERVICES = "https://cognitiveservices.azure.com"
#: Azure OpenAI's 401 to a bearer token it does not accept [obs, public issue threads].
ENTRA_REFUSED = (
    "Unauthorized. Access token is missing, invalid, audience is incorrect "
    "(https://cognitiveservices.azure.com), or have expired."
)

_SAFE = {"filtered": False, "severity": "safe"}
_NOT_DETECTED = {"filtered": False, "detected": False}


def azure_error(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def prompt_filtered_body() -> dict[str, Any]:
    """The 400 Azure answers a prompt its content filter blocks (providers.md §3.1)."""
    return {
        "error": {
            "message": PROMPT_FILTERED,
            "type": None,
            "param": "prompt",
            "code": "content_filter",
            "status": 400,
            "innererror": {
                "code": "ResponsibleAIPolicyViolation",
                "content_filter_result": {
                    "hate": {"filtered": True, "severity": "high"},
                    "self_harm": {"filtered": False, "severity": "safe"},
                    "sexual": {"filtered": False, "severity": "safe"},
                    "violence": {"filtered": True, "severity": "medium"},
                },
            },
        }
    }


def _rate_limited_body(retry_after_s: float) -> dict[str, Any]:
    return azure_error(
        "429",
        "Requests to the ChatCompletions_Create Operation under Azure OpenAI API have exceeded "
        "token rate limit of your current OpenAI S0 pricing tier. "
        f"Please retry after {math.ceil(retry_after_s)} seconds. Please go here: "
        "https://aka.ms/oai/quotaincrease if you would like to further increase the default "
        "rate limit.",
    )


_ERRORS: dict[int, tuple[str, str]] = {
    401: ("401", WRONG_KEY),
    403: ("403", "Access denied due to Virtual Network/Firewall rules."),
    404: ("DeploymentNotFound", DEPLOYMENT_NOT_FOUND),
    500: ("InternalServerError", "The server had an error while processing your request."),
    503: (
        "ServiceUnavailable",
        "The service is temporarily unable to process your request. Please try again later.",
    ),
}


class AzureSimulator(OpenAISimulator):
    """``api_key=None`` accepts any caller; ``models`` names the deployments (see module doc)."""

    protocol = "azure"
    prefix = V1_PREFIX

    def __init__(
        self,
        *,
        models: list[str] | None = None,
        identity_header: str | None = None,
        entra_token_lifetime_s: int = 3600,
        deployment_models: dict[str, str] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(models=models, **options)
        self.deployments = frozenset(models) if models else None
        #: Set: the simulator is also an App Service managed-identity endpoint
        #: (``GET /msi/token``, the secret in ``X-IDENTITY-HEADER``) and accepts the Entra ID
        #: tokens it issues as ``Authorization: Bearer`` until they expire.
        self.identity_header = identity_header
        self.entra_token_lifetime_s = entra_token_lifetime_s
        #: Entra ID token -> when it expires (epoch seconds).
        self.entra_tokens: dict[str, float] = {}
        #: deployment name -> the model it serves (a deployment named like a model serves it)
        self.deployment_models = dict(deployment_models or {})

    # --- routing ------------------------------------------------------------------------------

    def match(self, incoming: Incoming) -> Endpoint | None:
        path = incoming.path
        if incoming.method == "POST" and path.startswith(CLASSIC_PREFIX):
            deployment, _, rest = path[len(CLASSIC_PREFIX) :].partition("/")
            if deployment and rest in ("chat/completions", "embeddings"):
                incoming.params["deployment"] = deployment
                return "generate"
            return None
        if incoming.method == "GET" and path in ("/openai/models", MSI_TOKEN_PATH):
            return "probe"
        return super().match(incoming)  # the v1 paths: OpenAI's under /openai/v1

    def not_found(self, incoming: Incoming) -> Reply:
        return Reply.json(404, azure_error("404", "Resource not found"))

    # --- the request --------------------------------------------------------------------------

    def authenticate(self, incoming: Incoming) -> Reply | None:
        if incoming.path == MSI_TOKEN_PATH:
            return None  # checked by _issue_entra_token, as App Service checks its header
        bearer = incoming.headers.get("authorization", "")
        if self.identity_header is not None and bearer.lower().startswith("bearer "):
            expires = self.entra_tokens.get(bearer[7:].strip())
            if expires is not None and expires > time.time():
                return None
            if expires is not None or incoming.headers.get("api-key") is None:
                return Reply.json(401, azure_error("401", ENTRA_REFUSED))
        if self.api_key is None:
            return None
        given = incoming.headers.get("api-key")
        if given is None and _is_v1(incoming) and bearer.lower().startswith("bearer "):
            given = bearer[7:].strip()
        if not given:
            return Reply.json(401, azure_error("401", MISSING_KEY))
        if given != self.api_key:
            return Reply.json(401, azure_error("401", WRONG_KEY))
        return None

    def _issue_entra_token(self, incoming: Incoming) -> Reply:
        """App Service's managed-identity endpoint (api-version 2019-08-01), as azure-identity's
        AppServiceCredential calls it: the resource is the scope without ``/.default``."""
        if self.identity_header is None or incoming.headers.get("x-identity-header") != (
            self.identity_header
        ):
            return Reply.json(401, {"error": "unauthorized", "error_description": "bad header"})
        if incoming.query.get("resource") != COGNITIVE_SERVICES:
            return Reply.json(
                400,
                {"error": "invalid_resource", "error_description": "unexpected resource"},
            )
        token = f"eyJ0eXAiOiJKV1QifQ.sim-entra-{uuid.uuid4().hex}.sig"
        expires = int(time.time()) + self.entra_token_lifetime_s
        self.entra_tokens[token] = expires
        body = {
            "access_token": token,
            "expires_on": str(expires),
            "resource": COGNITIVE_SERVICES,
            "token_type": "Bearer",
            "client_id": "00000000-0000-0000-0000-000000000000",
        }
        return Reply.json(200, body)

    def _version_problem(self, incoming: Incoming) -> Reply | None:
        version = incoming.query.get("api-version")
        if _is_v1(incoming):
            if version is None or version in V1_API_VERSIONS:
                return None
        elif version is None:
            return Reply.json(404, azure_error("404", "Resource not found"))
        elif version in API_VERSIONS:
            return None
        return Reply.json(400, azure_error("BadRequest", "API version not supported"))

    @staticmethod
    def _reasoning_version_problem(incoming: Incoming, model: str) -> Reply | None:
        """Reasoning models are served on the classic surface only from 2024-12-01-preview."""
        version = incoming.query.get("api-version") or ""
        if _is_v1(incoming) or not is_openai_reasoning(model):
            return None
        if version[:10] >= REASONING_MIN_VERSION[:10]:
            return None
        return Reply.json(
            400,
            azure_error(
                "BadRequest",
                f"Model {model} is enabled only for api versions {REASONING_MIN_VERSION} and later",
            ),
        )

    def validate(self, incoming: Incoming) -> Reply | None:
        problem = self._version_problem(incoming)
        if problem is not None:
            return problem
        as_openai = _as_openai(incoming)
        deployment = as_openai.json.get("model") if isinstance(as_openai.json, dict) else None
        if isinstance(deployment, str):
            model = self.deployment_models.get(deployment, deployment)
            problem = self._reasoning_version_problem(incoming, model)
            if problem is not None:
                return problem
            as_openai = dataclasses.replace(as_openai, json={**as_openai.json, "model": model})
        problem = super().validate(as_openai)
        if problem is not None:
            return problem
        deployment = deployment if isinstance(deployment, str) else as_openai.json["model"]
        if self.deployments is not None and deployment not in self.deployments:
            return Reply.json(404, azure_error("DeploymentNotFound", DEPLOYMENT_NOT_FOUND))
        return None

    # --- the answers --------------------------------------------------------------------------

    def success(self, incoming: Incoming) -> Reply:
        as_openai = _as_openai(incoming)
        reply = super().success(as_openai)
        if incoming.path.endswith("/embeddings"):
            return reply  # no content filter results on embeddings
        body = json.loads(reply.body)
        prompt = json.dumps(as_openai.json["messages"])
        for choice in body["choices"]:
            choice["content_filter_results"] = {
                "hate": _SAFE,
                "protected_material_code": _NOT_DETECTED,
                "protected_material_text": _NOT_DETECTED,
                "self_harm": _SAFE,
                "sexual": _SAFE,
                "violence": _SAFE,
            }
            if FILTER_OUTPUT_MARKER in prompt:
                choice["message"]["content"] = None
                choice["finish_reason"] = "content_filter"
                choice["content_filter_results"]["violence"] = {
                    "filtered": True,
                    "severity": "medium",
                }
        body["prompt_filter_results"] = [
            {
                "prompt_index": 0,
                "content_filter_results": {
                    "hate": _SAFE,
                    "jailbreak": _NOT_DETECTED,
                    "self_harm": _SAFE,
                    "sexual": _SAFE,
                    "violence": _SAFE,
                },
            }
        ]
        body.pop("service_tier", None)
        return Reply.json(200, body, reply.headers)

    def probe(self, incoming: Incoming) -> Reply:
        if incoming.path == MSI_TOKEN_PATH:
            return self._issue_entra_token(incoming)
        problem = self._version_problem(incoming)
        if problem is not None:
            return problem
        data = [
            {
                "id": model,
                "object": "model",
                "status": "succeeded",
                "created_at": 1721172741,
                "capabilities": {"chat_completion": True, "completion": False},
                "lifecycle_status": "generally-available",
            }
            for model in self.models
        ]
        return Reply.json(200, {"object": "list", "data": data})

    def error(self, status: int, faults: Faults) -> Reply:
        if status == 400:
            return Reply.json(400, prompt_filtered_body(), retry_after_headers(faults))
        if status == 429:
            wait = DEFAULT_RETRY_AFTER_S if faults.retry_after_s is None else faults.retry_after_s
            headers = [
                (b"retry-after", str(math.ceil(wait)).encode()),
                (b"retry-after-ms", f"{wait * 1000:g}".encode()),
                (b"x-ratelimit-remaining-requests", b"0"),
                (b"x-ratelimit-remaining-tokens", b"0"),
            ]
            return Reply.json(429, _rate_limited_body(wait), headers)
        code, message = _ERRORS.get(status, (str(status), f"Error {status}"))
        return Reply.json(status, azure_error(code, message), retry_after_headers(faults))

    def response_headers(
        self, incoming: Incoming, processing_s: float
    ) -> list[tuple[bytes, bytes]]:
        request_id = str(uuid.uuid4()).encode()
        return [
            (b"apim-request-id", request_id),
            (b"x-request-id", request_id),
            (b"x-ms-region", b"Simulated Region"),
        ]


def _is_v1(incoming: Incoming) -> bool:
    return incoming.path.startswith(f"{V1_PREFIX}/")


def _as_openai(incoming: Incoming) -> Incoming:
    """The request as OpenAI's simulator reads it: on the classic surface the deployment in the
    path decides, whatever (if anything) the body's ``model`` says."""
    deployment = incoming.params.get("deployment")
    if deployment is None or not isinstance(incoming.json, dict):
        return incoming
    return dataclasses.replace(incoming, json={**incoming.json, "model": deployment})
