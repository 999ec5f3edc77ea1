"""Anthropic Messages API (../shared/providers.md §0, §1.2, §4).

The body builder and the success parser are module functions because the Bedrock adapter sends
the same body to Claude models through InvokeModel (without ``model``, with its own
``anthropic_version``) and reads the same message back.

Decisions, so nobody has to rediscover them:

* ``max_tokens`` is required by Anthropic. A request without one gets ``DEFAULT_MAX_TOKENS``
  (4096): every Claude model accepts it (4096 is the smallest per-model output maximum, Claude 3
  Haiku's), and it is far below the SDK's non-streaming guard (~21,333).
* System messages, wherever they stand, become the top-level ``system`` string, joined by a
  blank line. Consecutive turns of one role are merged into one message of text blocks: the
  Messages API does exactly that itself ("consecutive user or assistant turns ... will be
  combined into a single turn", SDK docstring), and stricter endpoints (Bedrock, older API
  versions) refuse non-alternating roles.
* ``temperature`` is capped at 1.0: Anthropic's scale ends at 1, OpenAI's at 2, and the 400 a
  higher value earns would fail the whole job (bad_request) although other targets accept it.
  When a request sets both ``temperature`` and ``top_p``, only ``temperature`` is sent: newer
  Claude models refuse the pair ("cannot both be specified"), and temperature is the one
  Anthropic tells callers to use.
* Stop reasons: end_turn/stop_sequence -> stop; max_tokens -> length; tool_use -> tool_calls;
  model_context_window_exceeded -> length (the output was cut short by the context window, the
  text so far is real output); pause_turn -> length (the turn is incomplete; it only happens
  with server tools, which turnout never sends); refusal -> ContentPolicy raised; anything else
  -> stop. The provider's own value is always kept in ``provider_finish_reason``.
* ``prompt_tokens`` is input + cache writes + cache reads (Anthropic's ``input_tokens`` counts
  only uncached input; the SDK documents the sum as the request's total input), and
  ``cached_tokens`` is ``cache_read_input_tokens``, so usage means what OpenAI's does.
* Auth is ``x-api-key`` with ``anthropic-version: 2023-06-01``, the documented pair. anthropic
  SDK 2.x sends ``Authorization: Bearer`` and ``anthropic-version: 2026-10-21`` instead; the
  version pins the response shape this module parses, so it stays pinned here until the parser
  is checked against the newer version (tests/conformance/test_anthropic_sdk.py records both).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import SecretStr

from routing.config import DeploymentConfig
from routing.errors import (
    AuthFailed,
    BadRequest,
    ContentPolicy,
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
from routing.models import CompletionRequest, FinishReason, Message, ProviderCompletion, Usage
from workers.http import HttpCall, HttpReply
from workers.providers.anthropic_parts import (
    content_blocks,
    output_fields,
    reply_tool_calls,
    thinking_budget,
    tool_fields,
)
from workers.providers.base import USER_AGENT, deployment_base_url, deployment_key
from workers.providers.reading import clip, read_json, sane_counts, snippet, token_count
from workers.providers.refused_parameters import refused_in
from workers.providers.retry_headers import parse_retry_after, parse_should_retry
from workers.settings import WorkerSettings

API_VERSION = "2023-06-01"
#: The 1M-token context window beta (anthropic SDK ``AnthropicBetaParam``), sent when
#: ANTHROPIC_SONNET_1M is set.
CONTEXT_1M_BETA = "context-1m-2025-08-07"
DEFAULT_MAX_TOKENS = 4096
#: Anthropic's temperature range is 0-1.
MAX_TEMPERATURE = 1.0
#: The official SDK's DEFAULT_MAX_RETRIES; ANTHROPIC_MAX_RETRIES overrides it in from_settings.
DEFAULT_RETRIES = 2

_STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "pause_turn": "length",
    "tool_use": "tool_calls",
}

_CONTEXT_MARKERS = (
    "prompt is too long",
    "exceed context limit",  # "input length and `max_tokens` exceed context limit: ..."
    "context window",
    "context length",
    "maximum allowed number of output tokens",  # max_tokens above this model's output limit
    "too many tokens",
)
#: Out of money: this credential may not spend, another may.
_NO_MONEY_MARKERS = (
    "usage limit",  # "You have reached your specified API usage limits"
    "spend limit",
    "credit balance",  # "Your credit balance is too low to access the Anthropic API"
    "billing",
)
#: ``error.details.error_code`` values (anthropic SDK 2.x ``ERROR_CLASSES``) that mean the
#: organization may not spend (429 and 402) or is disabled (400): waiting does not help.
_NO_SPEND_CODES = frozenset(
    {
        "enforced_spend_limit_reached",
        "contract_spend_limit_reached",
        "linked_organization_spend_limit_reached",
        "linked_organization_billing_unavailable",
        "organization_on_hold",
    }
)
_UNKNOWN_MODEL_MARKERS = (
    "not found",
    "does not exist",
    "unknown model",
    "invalid model",
    "not a valid model",
    "no such model",
)


class AnthropicAdapter:
    """Builds Messages API calls for one deployment and reads their replies."""

    def __init__(
        self,
        deployment: DeploymentConfig,
        *,
        base_url: str,
        api_key: SecretStr | None,
        betas: Sequence[str] = (),
        default_retries: int = DEFAULT_RETRIES,
        default_max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> None:
        self.deployment = deployment
        self.base_url = base_url.rstrip("/")
        self.url = f"{self.base_url}/v1/messages"
        self.default_retries = default_retries
        self.default_max_tokens = default_max_tokens
        self._api_key = api_key
        self._betas = tuple(betas)

    @classmethod
    def from_settings(
        cls, deployment: DeploymentConfig, settings: WorkerSettings
    ) -> AnthropicAdapter:
        return cls(
            deployment,
            base_url=deployment_base_url(deployment, settings),
            api_key=deployment_key(deployment, settings),
            betas=(CONTEXT_1M_BETA,) if settings.anthropic_sonnet_1m else (),
            default_retries=settings.anthropic_max_retries,
        )

    def _headers(self) -> dict[str, str]:
        headers = {
            "accept": "application/json",
            "anthropic-version": API_VERSION,
            "user-agent": USER_AGENT,
        }
        if self._api_key is not None:
            headers["x-api-key"] = self._api_key.get_secret_value()
        return headers

    def build_call(self, request: CompletionRequest) -> HttpCall:
        body = anthropic_body(
            request,
            model=self.deployment.model,
            default_max_tokens=self.default_max_tokens,
            extra_body=self.deployment.extra_body,
        )
        headers = {**self._headers(), "content-type": "application/json"}
        if self._betas:
            headers["anthropic-beta"] = ",".join(self._betas)
        return HttpCall("POST", self.url, headers, json.dumps(body).encode())

    def parse_reply(self, reply: HttpReply) -> ProviderCompletion:
        if reply.status != 200:
            raise classify_error(reply.status, reply.body, reply.headers)
        return parse_message(reply.body)

    def build_probe(self) -> HttpCall:
        """``GET /v1/models?limit=1``: authenticated, free, and it proves the base URL too."""
        return HttpCall("GET", f"{self.base_url}/v1/models?limit=1", self._headers(), b"")

    def read_probe(self, reply: HttpReply) -> None:
        """A 200 must be a models list: a base URL pointing at some other server that answers
        200 (a web page, a proxy's landing page) has not proven the credentials."""
        if reply.status != 200:
            raise classify_error(reply.status, reply.body, reply.headers)
        try:
            data = json.loads(reply.body)
        except ValueError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            raise InvalidResponse(
                f"200 from the models list is not a list of models: {snippet(reply.body)}",
                status_code=200,
            )


def anthropic_body(
    request: CompletionRequest,
    *,
    model: str | None,
    default_max_tokens: int,
    extra_body: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The Messages API body for ``request``; ``model=None`` leaves ``model`` out (Bedrock's
    InvokeModel names the model in its path). Tools, images, structured output and reasoning
    effort as ``workers.providers.anthropic_parts`` says."""
    body: dict[str, Any] = {} if model is None else {"model": model}
    budget = thinking_budget(request)
    body["max_tokens"] = (request.max_tokens or default_max_tokens) + (budget or 0)
    system = [m.content for m in request.messages if m.role == "system"]
    if system:
        body["system"] = "\n\n".join(system)
    body["messages"] = _turns(request.messages)
    if budget is not None:
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
    elif request.temperature is not None:
        body["temperature"] = min(request.temperature, MAX_TEMPERATURE)
    if request.top_p is not None and request.temperature is None and budget is None:
        body["top_p"] = request.top_p
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    body.update(tool_fields(request))
    body.update(output_fields(request))
    if request.user:
        body["metadata"] = {"user_id": request.user}
    if extra_body:
        body.update(extra_body)
    return body


def _turns(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """User and assistant messages, a run of one role merged into one message (a ``tool``
    message is a user turn of ``tool_result`` blocks). A turn of one text block is sent as a
    plain string, as before tools existed."""
    runs: list[tuple[str, list[dict[str, Any]]]] = []
    for message in messages:
        if message.role == "system":
            continue
        role = "user" if message.role == "tool" else message.role
        blocks = content_blocks(message)
        if runs and runs[-1][0] == role:
            runs[-1][1].extend(blocks)
        else:
            runs.append((role, blocks))
    return [
        {
            "role": role,
            "content": blocks[0]["text"]
            if len(blocks) == 1 and blocks[0]["type"] == "text"
            else blocks,
        }
        for role, blocks in runs
    ]


def parse_message(raw: bytes) -> ProviderCompletion:
    """Read a 200 Messages response. A refusal is content_policy; a body that is not a message
    is invalid_response, never a crash."""
    data = read_json(raw)
    if not isinstance(data, dict) or data.get("type") != "message":
        raise InvalidResponse(f"200 response is not a message: {snippet(raw)}", status_code=200)
    content = data.get("content")
    if not isinstance(content, list):
        raise InvalidResponse("200 message without a content list", status_code=200)
    texts: list[str] = []
    for block in content:
        if not isinstance(block, dict):
            raise InvalidResponse(
                "200 message with a content block that is not an object", status_code=200
            )
        if block.get("type") == "text":
            text = block.get("text")
            if not isinstance(text, str):
                raise InvalidResponse("200 message with a text block without text", status_code=200)
            texts.append(text)
    stop_reason = data.get("stop_reason")
    if stop_reason == "refusal":
        raise ContentPolicy(f"the model refused: {_refusal(data)}", status_code=200)
    return ProviderCompletion(
        text="".join(texts),
        finish_reason=_STOP_REASONS.get(str(stop_reason), "stop"),
        provider_finish_reason=stop_reason if isinstance(stop_reason, str) else None,
        usage=_usage(data.get("usage")),
        model=data.get("model") if isinstance(data.get("model"), str) else None,
        response_id=data.get("id") if isinstance(data.get("id"), str) else None,
        tool_calls=reply_tool_calls(content),
    )


def _refusal(data: dict[str, Any]) -> str:
    details = data.get("stop_details")
    if isinstance(details, dict):
        said = [str(details[k]) for k in ("category", "explanation") if details.get(k)]
        if said:
            return clip(": ".join(said))
    return "stop_reason refusal"


def _usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    counts = sane_counts(raw, "input_tokens", "output_tokens")
    if counts is None:
        return None
    fresh, output = counts
    written = token_count(raw.get("cache_creation_input_tokens")) or 0
    cached = token_count(raw.get("cache_read_input_tokens"))
    prompt = fresh + written + (cached or 0)
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=output,
        total_tokens=prompt + output,
        cached_tokens=cached,
    )


def classify_error(
    status: int, body: bytes, headers: Mapping[str, str], *, provider: str = "anthropic"
) -> ProviderError:
    """Map a non-200 reply to one error class (providers.md §0 table and §4)."""
    kind, message, code = error_details(body)
    lowered = f"{kind or ''} {code or ''} {message}".lower()
    details: dict[str, Any] = {
        "status_code": status,
        "retry_after_s": parse_retry_after(headers),
        "provider_code": code or kind,
        "should_retry": parse_should_retry(headers),
    }
    text = clip(f"{status} from {provider}: {f'{kind}: ' if kind else ''}{message}")
    if code in _NO_SPEND_CODES and status in (400, 402, 403, 429):
        return PermissionDenied(text, **details)
    if status == 400:
        refused = refused_in(message)
        if refused is not None:  # "`temperature` is deprecated for this model", prefill
            return UnsupportedParameter(text, param=refused, **details)
        if any(marker in lowered for marker in _NO_MONEY_MARKERS):
            return PermissionDenied(text, **details)
        if any(marker in lowered for marker in _CONTEXT_MARKERS):
            return ContextLength(text, **details)
        if "model" in lowered and any(m in lowered for m in _UNKNOWN_MODEL_MARKERS):
            return ModelNotFound(text, **details)
        return BadRequest(text, **details)
    if status == 401:
        return AuthFailed(text, **details)
    if status in (402, 403):  # billing_error, permission_error
        return PermissionDenied(text, **details)
    if status == 404:
        return ModelNotFound(text, **details)
    if status == 408:  # the SDK retries it
        return ProviderTimeout(text, **details)
    if status == 409:  # the SDK retries it: a transient conflict, not a bad request
        return ServerError(text, **details)
    if status == 413:  # request_too_large
        return ContextLength(text, **details)
    if status == 429:
        return RateLimited(text, **details)
    if status >= 500:
        if status == 529 or kind == "overloaded_error":
            return Overloaded(text, **details)
        if status == 504 or kind == "timeout_error":
            return ProviderTimeout(text, **details)
        return ServerError(text, **details)
    # A status the Messages API does not use: this deployment is misconfigured or is not what it
    # claims to be; the request itself may be fine elsewhere.
    return InvalidResponse(text, **details)


def error_details(body: bytes) -> tuple[str | None, str, str | None]:
    """(error type, message, details.error_code) from Anthropic's envelope
    ``{"type": "error", "error": {"type", "message", "details"?}, "request_id"}``, or the text of
    a body that is not one (a proxy's HTML page, say)."""
    try:
        data = json.loads(body)
    except ValueError:
        return None, snippet(body) or "(empty body)", None
    if not isinstance(data, dict):
        return None, snippet(body), None
    error = data.get("error")
    if not isinstance(error, dict):
        message = data.get("message")
        return None, clip(str(message)) if message else snippet(body), None
    kind = error.get("type") if isinstance(error.get("type"), str) else None
    message = str(error.get("message") or kind or json.dumps(error))
    extra = error.get("details")
    code = extra.get("error_code") if isinstance(extra, dict) else None
    return kind, clip(message), code if isinstance(code, str) else None
