"""OpenAI chat completions, and every provider that speaks it (../shared/providers.md §2, §8-17).

OpenAI, Groq, Together, DeepSeek, xAI, OpenRouter, Mistral, Ollama (/v1), vLLM and LM Studio
share the request and success shapes; they differ in error bodies and in which status codes
mean what, so ``classify_error`` knows each one's quirks. Two quirks of the success shape:

* Mistral's reasoning models (Magistral) answer ``message.content`` as a list of chunks
  (mistralai's ``AssistantMessage.content``: ``ThinkChunk`` ``{"type": "thinking", "thinking":
  [...]}`` and ``TextChunk`` ``{"type": "text", "text": ...}``): the text chunks are the answer,
  joined; the thinking is dropped.
* A reasoning model that spends ``max_completion_tokens`` thinking answers 200 with
  ``content: ""`` and ``finish_reason: "length"``: no answer, so Incomplete (fail over, the
  breaker does not count it), never a success with empty text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr

from routing.config import DeploymentConfig
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
    UnsupportedParameter,
)
from routing.models import CompletionRequest, FinishReason, ProviderCompletion, Usage
from workers.http import HttpCall, HttpReply
from workers.providers.base import USER_AGENT, deployment_base_url, deployment_key
from workers.providers.openai_messages import chat_body, reply_tool_calls
from workers.providers.reading import clip, read_json, sane_counts, snippet, token_count
from workers.providers.refused_parameters import OPENAI_CODES, refused_in, request_name
from workers.providers.retry_headers import (
    parse_reset_duration,
    parse_retry_after,
    parse_should_retry,
)
from workers.settings import WorkerSettings

_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "model_length": "length",  # Mistral: the model's context ran out
    "content_filter": "content_filter",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
}

_CONTEXT_MARKERS = (
    "context_length_exceeded",
    "maximum context length",
    "context length",
    "context window",
    "too many tokens",
    "reduce the length",
    "prompt is too long",
)


#: The official SDK's DEFAULT_MAX_RETRIES.
DEFAULT_RETRIES = 2


class OpenAICompatibleAdapter:
    """Builds chat-completion calls for one deployment and reads their replies."""

    def __init__(
        self,
        deployment: DeploymentConfig,
        *,
        base_url: str,
        api_key: SecretStr | None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        self.deployment = deployment
        self.base_url = base_url.rstrip("/")
        self.url = f"{self.base_url}/chat/completions"
        self.default_retries = DEFAULT_RETRIES
        self._api_key = api_key
        self._extra_headers = dict(extra_headers or {})

    @classmethod
    def from_settings(
        cls, deployment: DeploymentConfig, settings: WorkerSettings
    ) -> OpenAICompatibleAdapter:
        spec = deployment.spec
        base_url = deployment_base_url(deployment, settings)
        if spec.protocol != "openai" and not base_url.endswith("/v1"):
            base_url += "/v1"  # a server that also speaks OpenAI's protocol under /v1 (Ollama)
        headers = {
            header: value
            for header, env in spec.header_envs.items()
            if (value := settings.value_of(env)) is not None
        }
        return cls(
            deployment,
            base_url=base_url,
            api_key=deployment_key(deployment, settings),
            extra_headers=headers,
        )

    def _headers(self) -> dict[str, str]:
        headers = {
            "content-type": "application/json",
            "accept": "application/json",
            "user-agent": USER_AGENT,
            **self._extra_headers,
        }
        if self._api_key is not None:
            headers["authorization"] = f"Bearer {self._api_key.get_secret_value()}"
        return headers

    def build_call(self, request: CompletionRequest) -> HttpCall:
        body = chat_body(
            request,
            self.deployment.model,
            self.deployment.spec.max_tokens_field,
            extra_body=self.deployment.extra_body,
        )
        return HttpCall("POST", self.url, self._headers(), json.dumps(body).encode())

    def build_probe(self) -> HttpCall:
        """``GET /models``; OpenRouter's list needs no key, so it asks about the key itself."""
        path = "/key" if self.deployment.provider == "openrouter" else "/models"
        headers = {k: v for k, v in self._headers().items() if k != "content-type"}
        return HttpCall("GET", f"{self.base_url}{path}", headers, b"")

    def read_probe(self, reply: HttpReply) -> None:
        if reply.status != 200:
            raise classify_error(self.deployment.provider, reply.status, reply.body, reply.headers)

    def parse_reply(self, reply: HttpReply) -> ProviderCompletion:
        if reply.status != 200:
            raise classify_error(self.deployment.provider, reply.status, reply.body, reply.headers)
        embedded = embedded_error_status(reply.body)
        if embedded is not None:  # OpenRouter: "200 with the error in the body"
            raise classify_error(self.deployment.provider, embedded, reply.body, reply.headers)
        return parse_chat_completion(reply.body)


def parse_chat_completion(raw: bytes) -> ProviderCompletion:
    """Read a 200 response. Refusals and filtered output are content_policy; a body that is not
    what the protocol promises is invalid_response, never a crash."""
    data = read_json(raw)
    try:
        choice = data["choices"][0]
        message = choice["message"]
        content = message.get("content")
        provider_reason = choice.get("finish_reason")
    except (KeyError, IndexError, TypeError, AttributeError):
        raise InvalidResponse(
            f"200 response without choices[0].message: {snippet(raw)}", status_code=200
        ) from None
    if isinstance(content, list):
        content = _chunk_text(content)
    if content is not None and not isinstance(content, str):
        raise InvalidResponse("choices[0].message.content is not a string", status_code=200)
    if message.get("refusal"):
        raise ContentPolicy(f"the model refused: {clip(str(message['refusal']))}", status_code=200)
    if provider_reason == "content_filter" and not content:
        raise ContentPolicy("the provider's content filter withheld the output", status_code=200)
    if provider_reason == "insufficient_system_resource":  # DeepSeek: interrupted mid-generation
        raise Overloaded("the provider ran out of capacity mid-generation", status_code=200)
    if provider_reason == "error":  # Mistral: generation failed
        raise ServerError("the provider reported an error during generation", status_code=200)
    finish_reason = _FINISH_REASONS.get(str(provider_reason), "stop")
    tool_calls = reply_tool_calls(message)
    if finish_reason == "length" and not content and not message.get("tool_calls"):
        raise Incomplete(
            "the output budget ran out before any answer (finish_reason "
            f"{provider_reason}, empty content{_reasoning_note(data.get('usage'))}): "
            "raise max_tokens",
            status_code=200,
            provider_code=str(provider_reason),
        )
    return ProviderCompletion(
        text=content or "",
        finish_reason=finish_reason,
        provider_finish_reason=None if provider_reason is None else str(provider_reason),
        usage=_usage(data.get("usage")),
        model=data.get("model") if isinstance(data.get("model"), str) else None,
        response_id=data.get("id") if isinstance(data.get("id"), str) else None,
        tool_calls=tool_calls,
    )


def _chunk_text(chunks: list[Any]) -> str:
    """Mistral's content chunks: the ``text`` chunks joined; ``thinking`` (and references) are
    not the answer. A chunk that is not an object, or a text chunk without a string, breaks
    the protocol."""
    texts = []
    for chunk in chunks:
        if not isinstance(chunk, dict):
            raise InvalidResponse(
                "a choices[0].message.content chunk is not an object", status_code=200
            )
        if chunk.get("type") != "text":
            continue
        text = chunk.get("text")
        if not isinstance(text, str):
            raise InvalidResponse(
                "a text chunk of choices[0].message.content has no text", status_code=200
            )
        texts.append(text)
    return "".join(texts)


def _reasoning_note(usage: Any) -> str:
    details = usage.get("completion_tokens_details") if isinstance(usage, dict) else None
    spent = token_count(details.get("reasoning_tokens")) if isinstance(details, dict) else None
    return f"; {spent} reasoning tokens" if spent else ""


def _usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    counts = sane_counts(raw, "prompt_tokens", "completion_tokens")
    if counts is None:
        return None
    prompt, completion = counts
    details = raw.get("prompt_tokens_details")
    cached = token_count(details.get("cached_tokens")) if isinstance(details, dict) else None
    if cached is None:
        cached = token_count(raw.get("prompt_cache_hit_tokens"))  # DeepSeek
    thought = raw.get("completion_tokens_details")
    reasoning = token_count(thought.get("reasoning_tokens")) if isinstance(thought, dict) else None
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=token_count(raw.get("total_tokens")) or prompt + completion,
        cached_tokens=cached,
        reasoning_tokens=reasoning,
    )


def classify_error(
    provider: str, status: int, body: bytes, headers: Mapping[str, str]
) -> ProviderError:
    """Map a non-200 reply to one error class (the table in providers.md §0)."""
    message, code = error_details(body)
    lowered = f"{code or ''} {message}".lower()
    details: dict[str, Any] = {
        "status_code": status,
        "retry_after_s": parse_retry_after(headers),
        "provider_code": code,
        "should_retry": parse_should_retry(headers),
    }
    text = f"{status} from {provider}: {message}"
    if status == 400:
        # This model refuses a parameter the request uses (o-series models and `stop`, Grok
        # reasoning models and `stop`): fine for other models, and the route is healthy.
        param = error_param(body)
        refused = request_name(param) if param and code in OPENAI_CODES else refused_in(message)
        if refused is not None or code in OPENAI_CODES:
            return UnsupportedParameter(text, param=refused, **details)
    if status in (400, 422) and _names_unknown_model(lowered):
        # OpenRouter, DeepSeek and Mistral answer an unknown model with 400/422, not 404.
        return ModelNotFound(text, **details)
    if status == 400:
        if any(marker in lowered for marker in _CONTEXT_MARKERS):
            return ContextLength(text, **details)
        if "content_filter" in lowered or "content_policy" in lowered:
            return ContentPolicy(text, **details)
        if provider == "xai" and "api key" in lowered:  # xAI answers a wrong key with 400
            return AuthFailed(text, **details)
        return BadRequest(text, **details)
    if status == 401:
        return AuthFailed(text, **details)
    if status == 402:  # out of credits: this credential may not spend; try another
        return PermissionDenied(text, **details)
    if status == 403:
        if provider == "together" and "context length" in lowered:
            return ContextLength(text, **details)
        if provider == "openrouter" and ("moderation" in lowered or "flagged" in lowered):
            return ContentPolicy(text, **details)
        return PermissionDenied(text, **details)
    if status == 404:
        return ModelNotFound(text, **details)
    if status == 408:
        return ProviderTimeout(text, **details)
    if status == 413:
        if code == "rate_limit_exceeded" or "tokens per minute" in lowered:
            # Groq: "Request too large for model ... on tokens per minute (TPM): Limit 6000,
            # Requested 14368": larger than this tier's per-minute allowance, not than the
            # model's context. Retrying here cannot help; another route may take it, and the
            # route cools by its reset header.
            details["should_retry"] = False
            if details["retry_after_s"] is None:
                details["retry_after_s"] = parse_reset_duration(
                    headers.get("x-ratelimit-reset-tokens")
                )
            return RateLimited(text, **details)
        return ContextLength(text, **details)
    if status == 429:
        if code == "insufficient_quota":  # a quota, not a rate: waiting does not help
            return PermissionDenied(text, **details)
        return RateLimited(text, **details)
    if status in (498, 503, 529):  # Groq flex capacity, overloaded, Anthropic-style overload
        return Overloaded(text, **details)
    if status == 504:
        return ProviderTimeout(text, **details)
    if status >= 500 or status == 409:
        return ServerError(text, **details)
    if status == 422:
        return BadRequest(text, **details)
    # A status this protocol does not use (405, 415, ...) means this deployment is misconfigured
    # or is not what it claims to be: the request itself may be fine elsewhere.
    return InvalidResponse(text, **details)


def _names_unknown_model(lowered: str) -> bool:
    return "model" in lowered and any(
        marker in lowered
        for marker in (
            "not found",
            "does not exist",
            "not exist",
            "invalid model",
            "unknown model",
            "not a valid model",
            "no such model",
            "model_not_found",
        )
    )


def embedded_error_status(body: bytes) -> int | None:
    """The status an error envelope inside a 200 reply names (OpenRouter answers some failures
    with HTTP 200 and ``{"error": {"code": 429, ...}}``); None for a normal reply."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or "choices" in data or not isinstance(data.get("error"), dict):
        return None
    code = data["error"].get("code")
    return code if isinstance(code, int) and 400 <= code <= 599 else 502


def error_param(body: bytes) -> str | None:
    """OpenAI's ``error.param``: the request field an error is about, when it names one."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    error = data.get("error") if isinstance(data, dict) else None
    param = error.get("param") if isinstance(error, dict) else None
    return param if isinstance(param, str) and param else None


def error_details(body: bytes) -> tuple[str, str | None]:
    """(message, code) from any of the error envelopes the OpenAI family uses:
    ``{"error": {"message", "code"}}`` (OpenAI, vLLM, OpenRouter), ``{"error": "...",
    "code": "..."}`` (xAI, vLLM's auth middleware), ``{"message", "code"}`` (Mistral), or text."""
    try:
        data = json.loads(body)
    except ValueError:
        return snippet(body) or "(empty body)", None
    if not isinstance(data, dict):
        return snippet(body), None
    error = data.get("error")
    if isinstance(error, dict):
        message = error.get("message") or error.get("type") or json.dumps(error)
        code = error.get("code") or error.get("type")
    elif isinstance(error, str):
        message, code = error, data.get("code")
    else:
        message = data.get("message") or data.get("detail") or snippet(body)
        code = data.get("code") or data.get("type")
    return clip(str(message)), None if code is None else str(code)
