"""Cohere's v2 chat API (../shared/providers.md §14), as the official cohere SDK speaks it.

The request is what ``cohere.ClientV2().chat(...)`` sends (tests/conformance checks it):
``POST {base}/v2/chat`` with Bearer auth and ``"stream": false``; nucleus sampling is ``p``, not
``top_p``, and Cohere accepts it only within [0.01, 0.99], so a caller's ``top_p`` is clamped
into that range rather than turned into a 400 that would fail the job everywhere.

Usage: Cohere reports two counts. ``usage.tokens`` is what the model processed, including the
prompt template Cohere wraps around the messages; ``usage.billed_units`` is what the account is
charged for. turnout's usage feeds ``cost_usd``, so it reports the billed units and falls back
to the raw tokens only when a reply has no billed units.

Status codes (the SDK's own error table, plus 402 from Cohere's docs):

    400  "too many tokens: ..."  context_length   (input, or max_tokens above the model's limit)
    400  anything else           bad_request
    401, 498 invalid token       auth
    402 billing, 403             permission
    404                          model_not_found
    422                          bad_request
    429                          rate_limited     ("Trial key ... / month" is a quota: permission)
    499 client closed request    server_error     we never cancel a call we still wait for, so a
                                                  499 is something between us and Cohere giving
                                                  up: transient, worth a retry
    500                          server_error
    501 not implemented          invalid_response this model or endpoint cannot do what was asked:
                                                  retrying cannot help, another deployment may
    503                          overloaded
    504                          timeout
    other 5xx                    server_error
    other 4xx                    invalid_response
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import SecretStr

from routing.config import DeploymentConfig
from routing.errors import (
    AuthFailed,
    BadRequest,
    ContextLength,
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
from workers.http import HttpCall, HttpReply
from workers.providers.base import bearer_headers, deployment_base_url, deployment_key
from workers.providers.reading import clip, read_json, snippet, token_count
from workers.providers.retry_headers import parse_retry_after, parse_should_retry
from workers.settings import WorkerSettings

#: The cohere SDK's default ``max_retries`` (``cohere/base_client.py``).
DEFAULT_RETRIES = 2
#: Cohere's accepted range for ``p``.
MIN_P, MAX_P = 0.01, 0.99

_FINISH_REASONS: dict[str, FinishReason] = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
}

_STATUS_CLASSES: dict[int, type[ProviderError]] = {
    401: AuthFailed,
    402: PermissionDenied,
    403: PermissionDenied,
    404: ModelNotFound,
    422: BadRequest,
    429: RateLimited,
    498: AuthFailed,
    499: ServerError,
    500: ServerError,
    501: InvalidResponse,
    503: Overloaded,
    504: ProviderTimeout,
}


class CohereAdapter:
    """Builds v2 chat calls for one Cohere deployment and reads their replies."""

    def __init__(
        self, deployment: DeploymentConfig, *, base_url: str, api_key: SecretStr | None
    ) -> None:
        self.deployment = deployment
        self.base_url = server_root(base_url)
        self.default_retries = DEFAULT_RETRIES
        self._api_key = api_key

    @classmethod
    def from_settings(cls, deployment: DeploymentConfig, settings: WorkerSettings) -> CohereAdapter:
        return cls(
            deployment,
            base_url=deployment_base_url(deployment, settings),
            api_key=deployment_key(deployment, settings),
        )

    def _headers(self, *, with_body: bool) -> dict[str, str]:
        return bearer_headers(self._api_key, with_body=with_body)

    def build_call(self, request: CompletionRequest) -> HttpCall:
        body = chat_body(request, self.deployment.model)
        return HttpCall(
            "POST",
            f"{self.base_url}/v2/chat",
            self._headers(with_body=True),
            json.dumps(body).encode(),
        )

    def parse_reply(self, reply: HttpReply) -> ProviderCompletion:
        if reply.status != 200:
            raise classify_error(reply.status, reply.body, reply.headers)
        return parse_chat_response(reply.body)

    def build_probe(self) -> HttpCall:
        """``POST /v1/check-api-key`` without a body: free, and it answers for the key itself."""
        return HttpCall(
            "POST", f"{self.base_url}/v1/check-api-key", self._headers(with_body=False), b""
        )

    def read_probe(self, reply: HttpReply) -> None:
        """A 200 only proves the key when it says ``"valid": true``; ``false`` is a wrong key."""
        if reply.status != 200:
            raise classify_error(reply.status, reply.body, reply.headers)
        data = read_json(reply.body)
        valid = data.get("valid") if isinstance(data, dict) else None
        if valid is False:
            raise AuthFailed("Cohere says the API key is not valid", status_code=200)
        if valid is not True:
            raise InvalidResponse(
                f"check-api-key reply without a boolean 'valid': {snippet(reply.body)}",
                status_code=200,
            )


def server_root(base_url: str) -> str:
    """The API root: the chat call lives under /v2 and the probe under /v1, so a base URL
    written with either version (as some clients want it) is cut back to the root."""
    root = base_url.rstrip("/")
    for suffix in ("/v1", "/v2"):
        if root.endswith(suffix):
            return root[: -len(suffix)]
    return root


def chat_body(request: CompletionRequest, model: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        "stream": False,
    }
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["p"] = min(max(request.top_p, MIN_P), MAX_P)
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    return body


def parse_chat_response(raw: bytes) -> ProviderCompletion:
    """Read a 200 reply. A generation Cohere itself ended with ERROR or TIMEOUT raises that
    class (the text, if any, is incomplete); a body without a message is invalid_response."""
    data = read_json(raw)
    message = data.get("message") if isinstance(data, dict) else None
    if not isinstance(message, dict):
        raise InvalidResponse(f"200 response without a message: {snippet(raw)}", status_code=200)
    text = _text(message.get("content"))
    reason = data.get("finish_reason")
    if reason == "ERROR":
        raise ServerError("Cohere reported an error during generation", status_code=200)
    if reason == "TIMEOUT":
        raise ProviderTimeout("Cohere timed out during generation", status_code=200)
    response_id = data.get("id")
    return ProviderCompletion(
        text=text,
        finish_reason=_FINISH_REASONS.get(str(reason), "stop"),
        provider_finish_reason=None if reason is None else str(reason),
        usage=billed_usage(data.get("usage")),
        model=None,  # v2 chat replies do not name the model
        response_id=response_id if isinstance(response_id, str) else None,
    )


def _text(content: Any) -> str:
    """The text blocks of ``message.content``, joined; thinking blocks are not the answer, and
    a tool-call reply may have no content at all."""
    if content is None:
        return ""
    if not isinstance(content, list):
        raise InvalidResponse("message.content is not a list of blocks", status_code=200)
    parts: list[str] = []
    for block in content:
        if isinstance(block, dict) and block.get("type") == "text":
            text = block.get("text")
            if not isinstance(text, str):
                raise InvalidResponse("a text block without a string 'text'", status_code=200)
            parts.append(text)
    return "".join(parts)


def billed_usage(raw: Any) -> Usage | None:
    """Usage in billed units (what cost follows), else in raw tokens; None when neither."""
    if not isinstance(raw, dict):
        return None
    counts = _counts(raw.get("billed_units")) or _counts(raw.get("tokens"))
    if counts is None:
        return None
    prompt, completion = counts
    cached = _count(raw.get("cached_tokens"))
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        cached_tokens=cached,
    )


def _counts(raw: Any) -> tuple[int, int] | None:
    if not isinstance(raw, dict):
        return None
    prompt, completion = _count(raw.get("input_tokens")), _count(raw.get("output_tokens"))
    if prompt is None and completion is None:
        return None
    return prompt or 0, completion or 0


def _count(value: Any) -> int | None:
    """Cohere's schema types counts as numbers (floats in the SDK); whole ones are accepted."""
    return token_count(value)


def classify_error(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    *,
    now: Callable[[], float] = time.time,
) -> ProviderError:
    """Map a non-200 reply to one error class (the table in this module's docstring)."""
    message = error_message(body)
    lowered = message.lower()
    details: dict[str, Any] = {
        "status_code": status,
        "retry_after_s": retry_after(headers, now=now),
        "should_retry": parse_should_retry(headers),
    }
    text = f"{status} from cohere: {message}"
    if status == 400:
        cls: type[ProviderError] = ContextLength if "too many tokens" in lowered else BadRequest
    elif status == 429 and "/ month" in lowered:
        cls = PermissionDenied  # a trial key's monthly cap: waiting minutes does not help
    elif status in _STATUS_CLASSES:
        cls = _STATUS_CLASSES[status]
    elif status >= 500:
        cls = ServerError
    else:
        cls = InvalidResponse
    return cls(text, **details)


def retry_after(
    headers: Mapping[str, str], *, now: Callable[[], float] = time.time
) -> float | None:
    """``retry-after-ms`` / ``retry-after`` first, then ``x-ratelimit-reset`` (a Unix time in
    seconds), the order the cohere SDK's ``_retry_timeout`` reads them in."""
    delay = parse_retry_after(headers, now=now)
    if delay is not None:
        return delay
    try:
        reset = int(headers.get("x-ratelimit-reset", ""))
    except ValueError:
        return None
    wait = reset - now()
    return wait if wait > 0 else None  # a reset already past says nothing, as in the SDK


def error_message(body: bytes) -> str:
    """The ``message`` of Cohere's ``{"id", "message"}`` error body, or the body's text."""
    try:
        data = json.loads(body)
    except ValueError:
        return snippet(body) or "(empty body)"
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return clip(data["message"])
    return snippet(body)
