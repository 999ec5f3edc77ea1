"""Bedrock's errors, classified the way botocore reads them (../shared/providers.md §7).

The exception name comes from ``x-amzn-ErrorType`` (as botocore's RestJSONParser reads it), not
the status alone: Bedrock's 403 is a bad signature or a missing permission, its 429 a throttle
or a model still loading. AWS's InvalidSignatureException message spells out its canonical
request, which holds ``x-amz-security-token:<token>``, and its string-to-sign: the message is cut
where those begin, because a clipped token escapes whole-secret redaction. Markers are matched
case-insensitively with apostrophes made straight (AWS writes U+2019).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

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
    UnsupportedParameter,
)
from workers.providers.reading import clip, snippet
from workers.providers.refused_parameters import refused_in
from workers.providers.retry_headers import parse_retry_after

#: Exception name -> class, for every name whose meaning does not depend on its message.
_ERRORS_BY_CODE: dict[str, type[ProviderError]] = {
    "AccessDeniedException": PermissionDenied,
    "UnrecognizedClientException": AuthFailed,
    "InvalidSignatureException": AuthFailed,
    "ExpiredTokenException": AuthFailed,
    "IncompleteSignatureException": AuthFailed,
    "MissingAuthenticationTokenException": AuthFailed,
    "ResourceNotFoundException": ModelNotFound,
    "ModelTimeoutException": ProviderTimeout,
    "ModelErrorException": ServerError,
    "ModelStreamErrorException": ServerError,
    "ThrottlingException": RateLimited,
    "ServiceQuotaExceededException": RateLimited,
    "ModelNotReadyException": Overloaded,
    "InternalServerException": ServerError,
    "ServiceUnavailableException": Overloaded,
}

#: A status with no exception name we know (a proxy in front, a new exception) -> class.
_ERRORS_BY_STATUS: dict[int, type[ProviderError]] = {
    400: BadRequest,
    403: PermissionDenied,
    404: ModelNotFound,
    408: ProviderTimeout,
    413: ContextLength,
    424: ServerError,
    429: RateLimited,
    503: Overloaded,
    504: ProviderTimeout,
}

#: Bedrock's context overflows, as its ValidationException words them (the list the AWS
#: strands-agents SDK matches: "Input is too long for requested model", Claude's "input length
#: and `max_tokens` exceed context limit: 199759 + 8192 > 200000, ...", "too many total text
#: bytes"); matched after ``normalised`` drops backticks, which AWS writes in some and not others.
_CONTEXT_MARKERS = (
    "input is too long",
    "too many tokens",
    "too many input tokens",
    "prompt is too long",
    "context window",
    "exceed context limit",
    "too many total text bytes",
)
_MODEL_MARKERS = (
    "model identifier is invalid",
    "on-demand throughput isn't supported",
    "on-demand throughput is not supported",
)
#: Where AWS's signature diagnostics begin: the canonical request (with the session token in it)
#: and the string-to-sign. Nothing from the first of these on is kept.
_SIGNING_DETAILS = re.compile(
    r"the canonical string|the string-to-sign|x-amz-security-token\s*:", re.IGNORECASE
)
#: Apostrophes AWS and proxies write, all read as "'".
_APOSTROPHES = str.maketrans({**dict.fromkeys("\u2019\u2018\u02bc", "'"), "`": None})


def classify_error(status: int, body: bytes, headers: Mapping[str, str]) -> ProviderError:
    """Map a non-200 reply to one error class (providers.md §7's table), by exception name."""
    code = error_code(headers, body)
    message = error_message(body)
    text = f"{status} from bedrock ({code or 'no error type'}): {message}"
    details: dict[str, Any] = {
        "status_code": status,
        "retry_after_s": retry_after(headers),
        "provider_code": code,
    }
    if code == "ValidationException":
        lowered = normalised(message)
        refused = refused_in(lowered)
        if refused is not None:  # Claude's own refusal, passed through (Converse, InvokeModel)
            return UnsupportedParameter(text, param=refused, **details)
        if any(marker in lowered for marker in _CONTEXT_MARKERS):
            return ContextLength(text, **details)
        if any(marker in lowered for marker in _MODEL_MARKERS):
            return ModelNotFound(text, **details)
        return BadRequest(text, **details)
    if status == 403 and "api key is valid" in normalised(message):
        # A Bedrock API key (bearer) refused: "Authentication failed: Please make sure your API
        # Key is valid." [obs, public issue threads]: the key's fault, not a permission.
        return AuthFailed(text, **details)
    known = _ERRORS_BY_CODE.get(code or "")
    if known is not None:
        return known(text, **details)
    by_status = _ERRORS_BY_STATUS.get(status)
    if by_status is not None:
        return by_status(text, **details)
    if status >= 500:
        return ServerError(text, **details)
    # A status Bedrock does not use (401, 405, 415...): this endpoint is not what it claims.
    return InvalidResponse(text, **details)


def error_code(headers: Mapping[str, str], body: bytes) -> str | None:
    """The exception name, as botocore's RestJSONParser finds it: ``x-amzn-ErrorType`` (e.g.
    ``ThrottlingException:http://internal.amazon.com/coral/...``), split at ':' and '#'; else
    the body's ``code``/``Code``/``__type``."""
    raw = {name.lower(): value for name, value in headers.items()}.get("x-amzn-errortype")
    if raw is None:
        data = _loads(body)
        found = data.get("code", data.get("Code", data.get("__type")))
        raw = found if isinstance(found, str) else None
    if not raw:
        return None
    return raw.split(":", 1)[0].rsplit("#", 1)[-1] or None


def error_message(body: bytes) -> str:
    """The provider's message (or a snippet of a body without one), without AWS's signature
    diagnostics, clipped."""
    data = _loads(body)
    message = data.get("message", data.get("Message"))
    if not isinstance(message, str) or not message:
        message = snippet(body)
    if not message:
        return "(empty body)"
    return clip(without_signing_details(message)) or "(no message before the signing details)"


def without_signing_details(message: str) -> str:
    """``message`` up to AWS's canonical request and string-to-sign, which hold the session
    token: everything from the first of them on is dropped, never clipped or redacted."""
    found = _SIGNING_DETAILS.search(message)
    return message if found is None else message[: found.start()].rstrip()


def normalised(message: str) -> str:
    """Lower case with every apostrophe a straight one and no backticks, for matching markers."""
    return message.translate(_APOSTROPHES).casefold()


def retry_after(headers: Mapping[str, str]) -> float | None:
    """``x-amz-retry-after`` is whole milliseconds (botocore's ExponentialBackoff reads it so);
    a plain ``retry-after`` (seconds or a date) from a proxy is honoured too."""
    lowered = {name.lower(): value for name, value in headers.items()}
    raw_ms = lowered.get("x-amz-retry-after")
    if raw_ms is not None:
        try:
            milliseconds = int(raw_ms)
        except ValueError:
            milliseconds = -1
        if milliseconds >= 0:
            return milliseconds / 1000
    return parse_retry_after(lowered)


def _loads(raw: bytes) -> dict[str, Any]:
    """An error body as a JSON object; anything else (a proxy's HTML page) as an empty one."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        return {}
    return data if isinstance(data, dict) else {}
