"""Simulated Gemini API and Vertex AI servers (../shared/providers.md §5, §6, §19).

Both answer generateContent with what Google sends, bytes python-genai parses: the
GenerateContentResponse, and google.rpc errors ``{"error": {code, message, status, details}}``
with Google's status strings and detail messages (ErrorInfo, QuotaFailure, Help, RetryInfo). The
traps are reproduced: a wrong Gemini key is **400** INVALID_ARGUMENT with reason
API_KEY_INVALID; a missing one is 403 "unregistered callers"; a 429 says how long to wait only in
RetryInfo.retryDelay (no Retry-After header), like the real API. Request bodies are checked the
way Google's JSON parser does it: an unknown field name is a 400, so a misspelt field fails here
and not first in production.

The Vertex simulator is also its own OAuth2 server: ``POST /token`` takes google-auth's
JWT-bearer grant (a service account file whose ``token_uri`` points here), checks the assertion
(and its RS256 signature, given the service account's public key), and issues tokens; the
Vertex endpoints accept only tokens it issued and has not revoked, or ``api_key``.
"""

from __future__ import annotations

import base64
import json
import re
import time
import urllib.parse
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from ops.simulator.base import (
    Endpoint,
    Incoming,
    ProviderSimulator,
    Reply,
    estimate_tokens,
    reply_text,
)
from ops.simulator.faults import Faults

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: What Google's token endpoint takes as the assertion's ``aud`` (google-auth always sends the
#: first, whatever the file's token_uri says).
TOKEN_AUDIENCES = (
    "https://oauth2.googleapis.com/token",
    "https://www.googleapis.com/oauth2/v4/token",
)
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
RPC_STATUS: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    402: "RESOURCE_EXHAUSTED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_MESSAGES: dict[int, str] = {
    400: "Request contains an invalid argument.",
    401: "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project.",
    402: "Your prepayment credits are depleted.",
    403: "The caller does not have permission",
    404: "Requested entity was not found.",
    429: "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
    499: "The operation was cancelled.",
    500: "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "Deadline expired before operation could complete.",
}
_API_KEY_INVALID = "API key not valid. Please pass a valid API key."
_UNREGISTERED = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)
_TYPE = "type.googleapis.com/google.rpc."
#: Field names Google's JSON parser knows (in camelCase; it takes snake_case too).
# fmt: off
_REQUEST_FIELDS = frozenset({
    "contents", "systemInstruction", "generationConfig", "safetySettings", "tools", "toolConfig",
    "cachedContent", "labels", "model",
})
_CONFIG_FIELDS = frozenset({
    "stopSequences", "responseMimeType", "responseSchema", "responseJsonSchema",
    "responseModalities", "candidateCount", "maxOutputTokens", "temperature", "topP", "topK",
    "seed", "presencePenalty", "frequencyPenalty", "responseLogprobs", "logprobs",
    "speechConfig", "thinkingConfig", "imageConfig", "mediaResolution", "routingConfig",
    "audioTimestamp", "enableEnhancedCivicAnswers", "modelSelectionConfig",
})
# fmt: on
_THINKING_FIELDS = frozenset({"thinkingBudget", "thinkingLevel", "includeThoughts"})
_THOUGHTS_BY_LEVEL = {"MINIMAL": 0, "LOW": 16, "MEDIUM": 48, "HIGH": 96}


def rpc_error(
    status: int, message: str | None = None, details: list[dict[str, Any]] | None = None
) -> Reply:
    """A google.rpc Status reply, as Google's front ends send it."""
    error: dict[str, Any] = {
        "code": status,
        "message": message or _MESSAGES.get(status, f"HTTP {status}"),
        "status": RPC_STATUS.get(status, "UNKNOWN"),
    }
    if details:
        error["details"] = details
    return Reply.json(status, {"error": error})


def error_info(reason: str, service: str, **metadata: str) -> dict[str, Any]:
    return {
        "@type": f"{_TYPE}ErrorInfo",
        "reason": reason,
        "domain": "googleapis.com",
        "metadata": {"service": service, **metadata},
    }


def _snake(name: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def _unknown(given: Mapping[str, Any], known: frozenset[str]) -> str | None:
    """The first field Google's JSON parser would not know (it takes camelCase and snake_case)."""
    allowed = known | {_snake(name) for name in known}
    return next((name for name in given if name not in allowed), None)


def _get(mapping: Mapping[str, Any], name: str) -> Any:
    return mapping.get(name, mapping.get(_snake(name)))


def _texts(content: Any) -> list[str]:
    parts = content.get("parts") if isinstance(content, dict) else None
    return [str(p.get("text", "")) for p in parts or [] if isinstance(p, dict)]


class _GenerateContentSimulator(ProviderSimulator):
    """What both front doors share: request checks, the response and the errors."""

    service: ClassVar[str] = "generativelanguage.googleapis.com"

    def validate(self, incoming: Incoming) -> Reply | None:
        request = incoming.json
        if not isinstance(request, dict):
            return rpc_error(400, "Invalid JSON payload received. Expected an object.")
        config = _get(request, "generationConfig") or {}
        if not isinstance(config, dict):
            return rpc_error(400, "Invalid value at 'generation_config': expected an object.")
        thinking = _get(config, "thinkingConfig") or {}
        problem = (
            _unknown(request, _REQUEST_FIELDS)
            or _unknown(config, _CONFIG_FIELDS)
            or (_unknown(thinking, _THINKING_FIELDS) if isinstance(thinking, dict) else None)
        )
        if problem is not None:
            return rpc_error(
                400, f'Invalid JSON payload received. Unknown name "{problem}": Cannot find field.'
            )
        if isinstance(thinking, dict) and None not in (
            _get(thinking, "thinkingBudget"),
            _get(thinking, "thinkingLevel"),
        ):
            return rpc_error(400, "Thinking budget and thinking level cannot both be set.")
        return self._check_contents(request)

    def _check_contents(self, request: Mapping[str, Any]) -> Reply | None:
        contents = request.get("contents")
        if not isinstance(contents, list) or not contents:
            return rpc_error(400, "* GenerateContentRequest.contents: contents is not specified\n")
        for index, content in enumerate(contents):
            if not isinstance(content, dict) or content.get("role", "user") not in (
                "user",
                "model",
            ):
                return rpc_error(400, "Please use a valid role: user, model.")
            if not isinstance(content.get("parts"), list) or not content["parts"]:
                return rpc_error(
                    400, f"* GenerateContentRequest.contents[{index}].parts: contents.parts must "
                    "not be empty.\n",
                )  # fmt: skip
        config = _get(request, "generationConfig") or {}
        limit = _get(config, "maxOutputTokens")
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            return rpc_error(400, "max_output_tokens must be positive.")
        return None

    def success(self, incoming: Incoming) -> Reply:
        request = incoming.json
        model = incoming.params["model"]
        contents = request["contents"]
        user_turns = [c for c in contents if c.get("role", "user") == "user"]
        text = reply_text(self.name, model, "".join(_texts(user_turns[-1] if user_turns else {})))
        config = _get(request, "generationConfig") or {}
        limit = _get(config, "maxOutputTokens")
        finish = "STOP"
        if isinstance(limit, int) and estimate_tokens(text) > limit:
            text, finish = text[: limit * 4], "MAX_TOKENS"
        prompt_texts = _texts(_get(request, "systemInstruction"))
        prompt_texts += [text for content in contents for text in _texts(content)]
        prompt = sum(estimate_tokens(t) for t in prompt_texts)
        output = estimate_tokens(text)
        thoughts = _thoughts(_get(config, "thinkingConfig"))
        usage: dict[str, Any] = {
            "promptTokenCount": prompt,
            "candidatesTokenCount": output,
            "totalTokenCount": prompt + output + thoughts,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
        }
        if thoughts:
            usage["thoughtsTokenCount"] = thoughts
        candidate = {
            "content": {"parts": [{"text": text}], "role": "model"},
            "finishReason": finish,
            "index": 0,
        }
        body = {
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": model,
            "responseId": uuid.uuid4().hex[:22],
        }
        return Reply.json(200, self._decorate(body))

    def _decorate(self, body: dict[str, Any]) -> dict[str, Any]:
        """Fields only one front door sends."""
        return body

    def error(self, status: int, faults: Faults) -> Reply:
        details: list[dict[str, Any]] = []
        if status == 429:
            details = [self._quota_failure(), *_retry_info(faults.retry_after_s)]
        return rpc_error(status, self._message(status), details)

    def _message(self, status: int) -> str | None:
        return None

    def _quota_failure(self) -> dict[str, Any]:
        metric = f"{self.service}/generate_content_free_tier_requests"
        violation = {
            "quotaMetric": metric,
            "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
            "quotaDimensions": {"location": "global", "model": self.models[0]},
            "quotaValue": "10",
        }
        return {"@type": f"{_TYPE}QuotaFailure", "violations": [violation]}

    def malformed(self) -> Reply:
        return Reply(200, b'{"candidates": [{"content": {"parts": [{"text": "cut')

    def not_found(self, incoming: Incoming) -> Reply:
        return rpc_error(404, f"Method not found: {incoming.method} {incoming.path}")


def _thoughts(thinking: Any) -> int:
    """The simulator thinks only when asked to, so tests see thoughtsTokenCount move."""
    if not isinstance(thinking, dict):
        return 0
    budget = _get(thinking, "thinkingBudget")
    if isinstance(budget, int):
        return min(max(budget, 0), 64)
    return _THOUGHTS_BY_LEVEL.get(str(_get(thinking, "thinkingLevel")).upper(), 0)


def _retry_info(retry_after_s: float | None) -> list[dict[str, Any]]:
    if retry_after_s is None:
        return []
    return [{"@type": f"{_TYPE}RetryInfo", "retryDelay": f"{retry_after_s:g}s"}]


class GeminiSimulator(_GenerateContentSimulator):
    """generativelanguage.googleapis.com under ``/v1beta`` (and ``/v1``)."""

    protocol = "gemini"
    _GENERATE = re.compile(r"^/(v1|v1beta)/models/(?P<model>[^/:]+):generateContent$")

    def match(self, incoming: Incoming) -> Endpoint | None:
        found = self._GENERATE.match(incoming.path)
        if incoming.method == "POST" and found:
            incoming.params["model"] = found["model"]
            return "generate"
        if incoming.method == "GET" and incoming.path in ("/v1beta/models", "/v1/models"):
            return "probe"
        return None

    def authenticate(self, incoming: Incoming) -> Reply | None:
        """The key from ``x-goog-api-key`` or ``?key=`` (which the recorder notes as
        ``query_has_key``, so tests can prove the adapter never puts it in the URL)."""
        if self.api_key is None:
            return None
        given = incoming.headers.get("x-goog-api-key") or incoming.query.get("key")
        if not given:
            return rpc_error(403, _UNREGISTERED)
        if given != self.api_key:
            details = [
                error_info("API_KEY_INVALID", self.service),
                {
                    "@type": f"{_TYPE}LocalizedMessage",
                    "locale": "en-US",
                    "message": _API_KEY_INVALID,
                },
            ]
            return rpc_error(400, _API_KEY_INVALID, details)
        return None

    def probe(self, incoming: Incoming) -> Reply:
        """``models.list`` with pageSize/pageToken paging."""
        try:
            size = int(incoming.query.get("pageSize") or 50)
            start = int(incoming.query.get("pageToken") or 0)
        except ValueError:
            return rpc_error(400, "Invalid value for pageSize or pageToken.")
        page = self.models[start : start + max(size, 1)]
        body: dict[str, Any] = {"models": [self._model(m) for m in page]}
        if start + len(page) < len(self.models):
            body["nextPageToken"] = str(start + len(page))
        return Reply.json(200, body)

    def _model(self, model: str) -> dict[str, Any]:
        return {
            "name": f"models/{model}", "version": "001", "displayName": model,
            "description": f"{self.name}: simulated {model}",
            "inputTokenLimit": 1048576, "outputTokenLimit": 65536,
            "supportedGenerationMethods": ["generateContent", "countTokens"],
            "temperature": 1, "topP": 0.95, "topK": 64, "maxTemperature": 2, "thinking": True,
        }  # fmt: skip


class VertexSimulator(_GenerateContentSimulator):
    """{location}-aiplatform.googleapis.com's publisher-model endpoints, and an OAuth2 token
    endpoint. ``trusted_keys`` maps a service account's private_key_id to its PEM public key;
    when given, only assertions signed by one of those keys get a token."""

    protocol = "vertex"
    service = "aiplatform.googleapis.com"
    grant_path = "/token"
    _MODEL = re.compile(
        r"^/(v1|v1beta1)/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
        r"/publishers/(?P<publisher>[^/]+)/models/(?P<model>[^/:]+):(?P<method>\w+)$"
    )

    def __init__(
        self,
        *,
        name: str = "sim",
        api_key: str | None = None,
        faults: Faults | None = None,
        models: list[str] | None = None,
        seed: int | None = None,
        trusted_keys: Mapping[str, str] | None = None,
        token_lifetime_s: int = 3600,
    ) -> None:
        super().__init__(name=name, api_key=api_key, faults=faults, models=models, seed=seed)
        self.trusted_keys = dict(trusted_keys) if trusted_keys is not None else None
        self.token_lifetime_s = token_lifetime_s
        #: access token -> when it expires (epoch seconds)
        self.issued: dict[str, float] = {}

    def revoke_tokens(self) -> None:
        """Forget every token issued so far (as if they were revoked)."""
        self.issued.clear()

    def match(self, incoming: Incoming) -> Endpoint | None:
        if incoming.method != "POST":
            return None
        if incoming.path == self.grant_path:
            return "probe"  # unauthenticated: ``authenticate`` lets it through
        found = self._MODEL.match(incoming.path)
        if found is None or found["method"] not in ("generateContent", "countTokens"):
            return None
        incoming.params.update(found.groupdict())
        return "generate" if found["method"] == "generateContent" else "probe"

    def authenticate(self, incoming: Incoming) -> Reply | None:
        if incoming.path == self.grant_path:
            return None
        header = incoming.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        if not token:
            return self._unauthenticated("CREDENTIALS_MISSING")
        if self.api_key is not None and token == self.api_key:
            return None
        expires = self.issued.get(token)
        if expires is None:
            return self._unauthenticated("ACCESS_TOKEN_TYPE_UNSUPPORTED")
        if expires <= time.time():
            return self._unauthenticated("ACCESS_TOKEN_EXPIRED")
        return None

    def _unauthenticated(self, reason: str) -> Reply:
        method = "google.cloud.aiplatform.v1.PredictionService.GenerateContent"
        return rpc_error(401, None, [error_info(reason, self.service, method=method)])

    def _message(self, status: int) -> str | None:
        if status == 429:
            return (
                "Resource exhausted. Please try again later. Please refer to "
                "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more "
                "details."
            )
        if status == 404:
            return (
                f"Publisher Model `publishers/google/models/{self.models[0]}` was not found or "
                "your project does not have access to it."
            )
        return None

    def _decorate(self, body: dict[str, Any]) -> dict[str, Any]:
        body["createTime"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        body["usageMetadata"]["trafficType"] = "ON_DEMAND"
        return body

    def probe(self, incoming: Incoming) -> Reply:
        if incoming.path == self.grant_path:
            return self._grant(incoming)
        problem = self._check_contents(incoming.json if isinstance(incoming.json, dict) else {})
        if problem is not None:
            return problem
        texts = [t for content in incoming.json["contents"] for t in _texts(content)]
        tokens = sum(estimate_tokens(t) for t in texts)
        return Reply.json(
            200,
            {
                "totalTokens": tokens,
                "totalBillableCharacters": sum(len(t.replace(" ", "")) for t in texts),
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": tokens}],
            },
        )

    def _grant(self, incoming: Incoming) -> Reply:
        """RFC 7523 JWT-bearer grant, answered the way oauth2.googleapis.com/token does."""
        form = dict(urllib.parse.parse_qsl(incoming.body.decode("utf-8", "replace")))
        if form.get("grant_type") != JWT_BEARER:
            return _oauth_error("unsupported_grant_type", "Invalid grant_type.")
        problem = check_assertion(form.get("assertion", ""), self.trusted_keys)
        if problem is not None:
            return _oauth_error("invalid_grant", problem)
        token = f"ya29.sim-{uuid.uuid4().hex}"
        self.issued[token] = time.time() + self.token_lifetime_s
        body = {"access_token": token, "expires_in": self.token_lifetime_s, "token_type": "Bearer"}
        return Reply.json(200, body)


def _oauth_error(error: str, description: str) -> Reply:
    return Reply.json(400, {"error": error, "error_description": description})


def check_assertion(assertion: str, trusted_keys: Mapping[str, str] | None) -> str | None:
    """None for a service-account assertion Google would take; otherwise why not."""
    try:
        header_b64, payload_b64, signature_b64 = assertion.split(".")
        header = json.loads(_unb64(header_b64))
        claims = json.loads(_unb64(payload_b64))
        signature = _unb64(signature_b64)
    except ValueError:
        return "Invalid JWT: malformed assertion."
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return "Invalid JWT: malformed assertion."
    now = time.time()
    if header.get("alg") != "RS256":
        return "Invalid JWT: algorithm must be RS256."
    if claims.get("aud") not in TOKEN_AUDIENCES:
        return "Invalid JWT: audience must be https://oauth2.googleapis.com/token."
    if CLOUD_PLATFORM_SCOPE not in str(claims.get("scope", "")).split():
        return "Invalid JWT: the cloud-platform scope is missing."
    if not claims.get("iss") or not isinstance(claims.get("exp"), int) or claims["exp"] < now:
        return "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe."
    if trusted_keys is None:
        return None
    pem = trusted_keys.get(str(header.get("kid")))
    if pem is None or not _verified(pem, f"{header_b64}.{payload_b64}".encode(), signature):
        return "Invalid JWT Signature."
    return None


def _verified(pem: str, signed: bytes, signature: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, rsa.RSAPublicKey):
        return False
    try:
        key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def _unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
