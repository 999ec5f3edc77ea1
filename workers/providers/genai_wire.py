"""The generateContent wire format shared by the Gemini API and Vertex AI: the request body,
the response, and google.rpc errors (../shared/providers.md §5, §6). Pure functions.

Decisions where the docs leave room:

* Minimum thinking (GEMINI_FORCE_MINIMUM_THINKING_BUDGET): python-genai documents
  ``thinkingBudget`` as "0 is DISABLED ... allowed ranges are model dependent"; Google's thinking
  guide gives 2.5 Pro 128-32768 (cannot be disabled), 2.5 Flash and Flash-Lite 0-24576, and moves
  Gemini 3 to ``thinkingLevel`` (a budget there is only "backwards compatible", and sending both
  is a 400). So: 2.5 Pro gets ``thinkingBudget: 128``, other 2.5 models ``thinkingBudget: 0``,
  Gemini 3 and later ``thinkingLevel: LOW`` (the lowest level every Gemini 3 model accepts; Pro
  models reject MINIMAL). Models that do not think (1.x, 2.0, Gemma, ``*-latest`` aliases whose
  generation we cannot tell) get no thinkingConfig, which they would refuse.
* Usage: thinking tokens are billed as output, so ``completion_tokens`` is
  candidatesTokenCount + thoughtsTokenCount and cost estimates stay right; ``prompt_tokens``
  includes toolUsePromptTokenCount; ``cached_tokens`` is cachedContentTokenCount.
* Finish reasons: STOP -> stop; MAX_TOKENS, CONTINUATION -> length (MAX_TOKENS with no answer
  text, only thoughts or no parts at all, is Incomplete: a thinking model spent
  maxOutputTokens thinking, which is no success); safety-like reasons raise
  ContentPolicy; PUP_LIMITED_DISABLED (a restricted account) PermissionDenied; tool-call and
  malformed-response reasons ServerError: we declare no tools, so these are generation glitches
  a retry may not repeat. Others (OTHER, unknown) keep their text with finish_reason ``error``,
  or are InvalidResponse when there is none.
* 499 CANCELLED: we did not cancel, so the server gave up on its own: ServerError (retried).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from routing.errors import (
    AuthFailed,
    BadRequest,
    ContentPolicy,
    ContextLength,
    Incomplete,
    InvalidResponse,
    ModelNotFound,
    Overloaded,
    PermissionDenied,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
)
from routing.models import CompletionRequest, FinishReason, ProviderCompletion, Usage
from workers.providers.reading import clip, read_json, snippet, token_count
from workers.providers.retry_headers import parse_retry_after

_POLICY_FINISH = frozenset(
    {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "LANGUAGE"}
    | {"MODEL_ARMOR", "ESCALATION"}
)
_GLITCH_FINISH = frozenset(
    {"MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS", "MALFORMED_RESPONSE"}
)
_FINISH: dict[str, FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "CONTINUATION": "length",
}
_CONTEXT_MARKERS = ("input token count", "maximum number of tokens", "context is too long")
_GEMINI_MODEL = re.compile(r"gemini-(\d+)(?:\.(\d+))?-([a-z]+)")


# --- the request ------------------------------------------------------------------------------


def minimum_thinking_config(model: str) -> dict[str, Any] | None:
    """The smallest thinking this model allows, or None for a model that does not think."""
    match = _GEMINI_MODEL.match(model.rsplit("/", 1)[-1].lower())
    if match is None or match.group(3) == "latest":
        return None
    major, minor = int(match.group(1)), int(match.group(2) or 0)
    if (major, minor) < (2, 5):
        return None
    if major == 2:
        return {"thinkingBudget": 128 if match.group(3) == "pro" else 0}
    return {"thinkingLevel": "LOW"}


def generate_content_body(
    request: CompletionRequest, model: str, *, minimum_thinking: bool = False
) -> dict[str, Any]:
    """A GenerateContentRequest. System messages go to ``systemInstruction`` (Gemini has no
    system role), assistant turns are ``model`` turns, and consecutive messages of one role are
    merged into one turn with several parts (Vertex has refused turns that do not alternate)."""
    contents: list[dict[str, Any]] = []
    system: list[dict[str, str]] = []
    for message in request.messages:
        part = {"text": message.content}
        if message.role == "system":
            system.append(part)
            continue
        role = "model" if message.role == "assistant" else "user"
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].append(part)
        else:
            contents.append({"role": role, "parts": [part]})
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    config: dict[str, Any] = {}
    if request.max_tokens is not None:
        config["maxOutputTokens"] = request.max_tokens
    if request.temperature is not None:
        config["temperature"] = request.temperature
    if request.top_p is not None:
        config["topP"] = request.top_p
    if request.stop:
        config["stopSequences"] = list(request.stop)
    if minimum_thinking and (thinking := minimum_thinking_config(model)) is not None:
        config["thinkingConfig"] = thinking
    if config:
        body["generationConfig"] = config
    return body


# --- the response -----------------------------------------------------------------------------


def parse_generate_content(raw: bytes) -> ProviderCompletion:
    """Read a 200 GenerateContentResponse: the text parts of candidate 0, joined."""
    data = read_json(raw)
    if not isinstance(data, dict):
        raise InvalidResponse(f"200 response is not an object: {snippet(raw)}", status_code=200)
    candidates = data.get("candidates")
    if not isinstance(candidates, list) or not candidates:
        feedback = data.get("promptFeedback")
        reason = feedback.get("blockReason") if isinstance(feedback, dict) else None
        if reason:
            raise ContentPolicy(
                f"Gemini blocked the prompt: {reason}", status_code=200, provider_code=str(reason)
            )
        raise InvalidResponse(f"200 response without candidates: {snippet(raw)}", status_code=200)
    candidate = candidates[0]
    if not isinstance(candidate, dict):
        raise InvalidResponse("candidates[0] is not an object", status_code=200)
    text = _candidate_text(candidate)
    raw_reason = candidate.get("finishReason")
    reason = raw_reason if isinstance(raw_reason, str) else None
    finish_reason = _finish_reason(reason, text)
    if reason == "MAX_TOKENS" and not text:
        raise Incomplete(
            "the output budget ran out before any answer (MAX_TOKENS with only thoughts"
            f"{_thoughts_note(data.get('usageMetadata'))}): raise max_tokens",
            status_code=200,
            provider_code=reason,
        )
    return ProviderCompletion(
        text=text,
        finish_reason=finish_reason,
        provider_finish_reason=reason,
        usage=_usage(data.get("usageMetadata")),
        model=data.get("modelVersion") if isinstance(data.get("modelVersion"), str) else None,
        response_id=data.get("responseId") if isinstance(data.get("responseId"), str) else None,
    )


def _candidate_text(candidate: dict[str, Any]) -> str:
    content = candidate.get("content", {})
    parts = content.get("parts", []) if isinstance(content, dict) else None
    if not isinstance(parts, list):
        raise InvalidResponse("candidates[0].content.parts is not a list", status_code=200)
    texts = []
    for part in parts:
        if not isinstance(part, dict):
            raise InvalidResponse("candidates[0].content.parts holds a non-object", status_code=200)
        if part.get("thought") is True:
            continue  # a thought summary, not the answer
        value = part.get("text")
        if value is not None and not isinstance(value, str):
            raise InvalidResponse("a text part is not a string", status_code=200)
        texts.append(value or "")
    return "".join(texts)


def _finish_reason(reason: str | None, text: str) -> FinishReason:
    if reason is None:
        return "stop"  # a complete non-streamed response always names one; be lenient
    if reason in _FINISH:
        return _FINISH[reason]
    error: type[ProviderError] = InvalidResponse
    if reason in _POLICY_FINISH or reason.startswith("IMAGE_"):
        error = ContentPolicy
    elif reason == "PUP_LIMITED_DISABLED":  # the account is restricted for policy violations
        error = PermissionDenied
    elif reason in _GLITCH_FINISH:
        error = ServerError
    elif text:
        return "error"
    raise error(f"Gemini stopped the response: {reason}", status_code=200, provider_code=reason)


def _thoughts_note(usage: Any) -> str:
    spent = token_count(usage.get("thoughtsTokenCount")) if isinstance(usage, dict) else None
    return f", {spent} thinking tokens" if spent else ""


def _usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    prompt = _count(raw, "promptTokenCount") + _count(raw, "toolUsePromptTokenCount")
    completion = _count(raw, "candidatesTokenCount") + _count(raw, "thoughtsTokenCount")
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=token_count(raw.get("totalTokenCount")) or prompt + completion,
        cached_tokens=token_count(raw.get("cachedContentTokenCount")),
    )


def _count(usage: dict[str, Any], name: str) -> int:
    return token_count(usage.get(name)) or 0


# --- errors -----------------------------------------------------------------------------------


def parse_duration(value: Any) -> float | None:
    """A google.protobuf.Duration in JSON ("41s", "1.5s", "0.250s"), as seconds."""
    if not isinstance(value, str):
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)s?\s*", value)
    return float(match.group(1)) if match else None


def rpc_error(body: bytes) -> tuple[str, str | None, list[dict[str, Any]]]:
    """(message, google.rpc status, details) from ``{"error": {code, message, status,
    details}}``, also when wrapped in a one-element list (as streaming endpoints send it)."""
    try:
        data = json.loads(body)
    except ValueError:
        return snippet(body) or "(empty body)", None, []
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return snippet(body), None, []
    status = error.get("status")
    raw_details = error.get("details")
    listed = raw_details if isinstance(raw_details, list) else []
    details = [d for d in listed if isinstance(d, dict)]
    message = error.get("message") or status or json.dumps(error)
    return clip(str(message)), status if isinstance(status, str) else None, details


def classify_error(
    provider: str, status: int, body: bytes, headers: Mapping[str, str]
) -> ProviderError:
    """Map a non-200 reply to one error class (providers.md §0, §5, §6)."""
    message, rpc_status, details = rpc_error(body)
    reasons = {str(d.get("reason")) for d in details if _detail_type(d) == "ErrorInfo"}
    retry_delay = next(
        (parse_duration(d.get("retryDelay")) for d in details if _detail_type(d) == "RetryInfo"),
        None,
    )
    kwargs: dict[str, Any] = {
        "status_code": status,
        "retry_after_s": retry_delay if retry_delay is not None else parse_retry_after(headers),
        "provider_code": next(iter(sorted(reasons)), None) or rpc_status,
    }
    text = f"{status} {rpc_status or ''} from {provider}: {message}".replace("  ", " ")
    return _error_class(status, rpc_status, reasons, message.lower())(text, **kwargs)


#: Status -> class where the status alone decides (see ``_error_class`` for the rest).
_BY_STATUS: dict[int, type[ProviderError]] = {
    400: BadRequest,
    401: AuthFailed,
    402: PermissionDenied,  # prepaid credit used up
    403: PermissionDenied,
    404: ModelNotFound,
    408: ProviderTimeout,
    409: ServerError,  # ABORTED: a concurrency conflict on Google's side
    413: ContextLength,
    429: RateLimited,
    499: ServerError,  # CANCELLED, and not by us
    503: Overloaded,
    504: ProviderTimeout,
}


def _error_class(
    status: int, rpc_status: str | None, reasons: set[str], lowered: str
) -> type[ProviderError]:
    if status == 400 and (
        "API_KEY_INVALID" in reasons
        or "api key not valid" in lowered
        or "api key expired" in lowered
    ):
        return AuthFailed  # Google answers a wrong key with 400, not 401
    if status == 403 and (
        any(reason.startswith("API_KEY_") for reason in reasons)
        or any(marker in lowered for marker in ("leaked", "unregistered callers"))
    ):
        return AuthFailed  # a blocked or leaked key, or no key at all
    if status in (400, 500) and any(marker in lowered for marker in _CONTEXT_MARKERS):
        return ContextLength  # 500 too: "Your input context is too long" (Gemini API docs)
    if status == 400 and rpc_status == "FAILED_PRECONDITION":
        return PermissionDenied  # billing, or the free tier's country list
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    # A status this API does not use means the deployment is not what it claims to be.
    return ServerError if status >= 500 else InvalidResponse


def _detail_type(detail: Mapping[str, Any]) -> str:
    return str(detail.get("@type", "")).rsplit(".", 1)[-1]


# --- the adapters -----------------------------------------------------------------------------
