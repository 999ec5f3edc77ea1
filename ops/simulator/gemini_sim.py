"""Simulated Gemini API and Vertex AI servers (../shared/providers.md §5, §6, §19).

Both answer generateContent with what Google sends, bytes python-genai parses: the
GenerateContentResponse, and google.rpc errors ``{"error": {code, message, status, details}}``
with Google's status strings and detail messages (ErrorInfo, QuotaFailure, Help, RetryInfo). The
traps are reproduced: a wrong Gemini key is **400** INVALID_ARGUMENT with reason
API_KEY_INVALID; a missing one is 403 "unregistered callers"; a 429 says how long to wait only in
RetryInfo.retryDelay (no Retry-After header), like the real API. Request bodies are checked the
way Google's JSON parser does it: an unknown field name is a 400, so a misspelt field fails here
and not first in production.

The Vertex simulator (ops.simulator.vertex_sim) answers with the same bodies.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar

from ops.simulator import embeddings
from ops.simulator.base import (
    Endpoint,
    Incoming,
    ProviderSimulator,
    Reply,
    estimate_tokens,
    reply_text,
)
from ops.simulator.faults import Faults

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


def texts_of(content: Any) -> list[str]:
    parts = content.get("parts") if isinstance(content, dict) else None
    return [str(p.get("text", "")) for p in parts or [] if isinstance(p, dict)]


class GenerateContentSimulator(ProviderSimulator):
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
        text = reply_text(self.name, model, "".join(texts_of(user_turns[-1] if user_turns else {})))
        config = _get(request, "generationConfig") or {}
        limit = _get(config, "maxOutputTokens")
        finish = "STOP"
        thinking = _get(config, "thinkingConfig")
        thoughts = _thoughts(thinking)
        parts: list[dict[str, Any]] = [{"text": text}]
        if isinstance(limit, int) and thoughts and thoughts >= limit:
            # The thinking spent maxOutputTokens: no answer part at all (a thought summary,
            # when asked for one), as a thinking model answers a budget it used up thinking.
            thoughts, text, finish = limit, "", "MAX_TOKENS"
            include = isinstance(thinking, dict) and _get(thinking, "includeThoughts") is True
            parts = [{"text": "Considering the request...", "thought": True}] if include else []
        elif isinstance(limit, int) and estimate_tokens(text) > limit:
            text, finish = text[: limit * 4], "MAX_TOKENS"
            parts = [{"text": text}]
        prompt_texts = texts_of(_get(request, "systemInstruction"))
        prompt_texts += [text for content in contents for text in texts_of(content)]
        prompt = sum(estimate_tokens(t) for t in prompt_texts)
        output = estimate_tokens(text) if text else 0
        usage: dict[str, Any] = {
            "promptTokenCount": prompt,
            "totalTokenCount": prompt + output + thoughts,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
        }
        if output:
            usage["candidatesTokenCount"] = output
        if thoughts:
            usage["thoughtsTokenCount"] = thoughts
        content: dict[str, Any] = {"role": "model"}
        if parts:
            content["parts"] = parts
        candidate = {"content": content, "finishReason": finish, "index": 0}
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
        """A path Google serves no API at gets its front end's HTML page, not a google.rpc
        error (that is for a model or method the API does not know)."""
        page = (
            "<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n"
            "  <title>Error 404 (Not Found)!!1</title>\n"
            "  <p><b>404.</b> <ins>That\u2019s an error.</ins>\n"
            f"  <p>The requested URL <code>{incoming.path}</code> was not found on this server."
            "  <ins>That\u2019s all we know.</ins>\n"
        )
        return Reply(404, page.encode(), content_type=b"text/html; charset=UTF-8")


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


class GeminiSimulator(GenerateContentSimulator):
    """generativelanguage.googleapis.com under ``/v1beta`` (and ``/v1``)."""

    protocol = "gemini"
    _GENERATE = re.compile(
        r"^/(v1|v1beta)/models/(?P<model>[^/:]+):(?P<method>generateContent|batchEmbedContents)$"
    )

    def match(self, incoming: Incoming) -> Endpoint | None:
        found = self._GENERATE.match(incoming.path)
        if incoming.method == "POST" and found:
            incoming.params["model"] = found["model"]
            incoming.params["method"] = found["method"]
            return "generate"
        if incoming.method == "GET" and incoming.path in ("/v1beta/models", "/v1/models"):
            return "probe"
        return None

    def validate(self, incoming: Incoming) -> Reply | None:
        if incoming.params.get("method") == "batchEmbedContents":
            problem = embeddings.gemini_problem(incoming.json, incoming.params["model"])
            return None if problem is None else rpc_error(400, problem)
        return super().validate(incoming)

    def success(self, incoming: Incoming) -> Reply:
        if incoming.params.get("method") == "batchEmbedContents":
            model = incoming.params["model"]
            return Reply.json(200, embeddings.gemini_batch_embed(incoming.json, model))
        return super().success(incoming)

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
