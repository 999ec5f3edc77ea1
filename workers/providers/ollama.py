"""Ollama's native chat API, ``POST {server}/api/chat`` (../shared/providers.md §15.1).

Ollama streams NDJSON unless a request says ``"stream": false``, so every call says it; a reply
that still arrives as NDJSON (or without ``done: true``) is not a completion and is reported as
invalid_response rather than half-read. Sampling settings go in ``options`` under Ollama's own
names (``num_predict`` is max_tokens). A local server needs no key; ollama.com's API takes
``Authorization: Bearer $OLLAMA_API_KEY``, which is sent whenever the key is set.

``done_reason``: ``stop`` and ``length`` come from generation. ``load`` and ``unload`` are what
the server answers a request with *no messages* (it only loaded or unloaded the model), which
turnout never sends: such a reply carries no completion, so it is invalid_response (fail over).
A missing ``done_reason`` (servers before it existed) reads as ``stop``; ``length`` with empty
content (a thinking model spent ``num_predict`` thinking) is Incomplete, not a success.

Context: Ollama loads a model with ``num_ctx`` tokens of context (its default, 4096 on a small
GPU, is far below most models' window) and, unless a request says ``"truncate": false``, cuts an
over-long chat to fit, silently: a 200 answer to a prompt it never saw whole. So every call says
``truncate: false``, and ``options.num_ctx`` is the deployment's context window when it has one
(``context_window`` in the config, else the model table's): a prompt that fits the window is
read whole, and one that does not is a 400 (context_length, which moves the job to a larger
context) instead of a quiet cut.

Status codes (server/routes.go, docs/api/errors.mdx):

    400  "... context length ..." / "... context size ..."   context_length (llama-server's
         "request (N tokens) exceeds the available context size (M tokens)", passed on)
    400  "does not support" / "invalid model name"   model_not_found (this model cannot serve it)
    400  anything else                     bad_request
    401 (ollama.com, or a local server that needs `ollama signin`)   auth
    403 (cloud disabled on this server)    permission
    404 "model 'x' not found"              model_not_found
    429                                    rate_limited
    499 request canceled                   server_error (we never cancel a call we wait for)
    500                                    server_error
    502 cloud model unreachable            server_error: the hop to ollama.com failed, which is
                                           transient and worth a retry before failing over
    503 "server busy ... maximum pending requests exceeded"   overloaded
    504                                    timeout
    other 4xx                              invalid_response
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
from workers.http import HttpCall, HttpReply
from workers.providers.base import bearer_headers, deployment_base_url, deployment_key
from workers.providers.reading import clip, read_json, snippet, token_count
from workers.providers.retry_headers import parse_retry_after, parse_should_retry
from workers.settings import WorkerSettings

#: Retries on one Ollama deployment when the policy names none (the ollama SDK has no retry).
DEFAULT_RETRIES = 2

_FINISH_REASONS: dict[str, FinishReason] = {"stop": "stop", "length": "length"}
_NOT_GENERATION = frozenset({"load", "unload"})
_CANNOT_SERVE = ("does not support", "invalid model name")
_CONTEXT_MARKERS = ("context length", "context size", "exceeds the available context")

_STATUS_CLASSES: dict[int, type[ProviderError]] = {
    401: AuthFailed,
    403: PermissionDenied,
    404: ModelNotFound,
    429: RateLimited,
    499: ServerError,
    500: ServerError,
    502: ServerError,
    503: Overloaded,
    504: ProviderTimeout,
}


class OllamaAdapter:
    """Builds ``/api/chat`` calls for one Ollama deployment and reads their replies."""

    def __init__(
        self, deployment: DeploymentConfig, *, base_url: str, api_key: SecretStr | None
    ) -> None:
        self.deployment = deployment
        self.base_url = server_root(base_url)
        self.default_retries = DEFAULT_RETRIES
        self._api_key = api_key

    @classmethod
    def from_settings(cls, deployment: DeploymentConfig, settings: WorkerSettings) -> OllamaAdapter:
        return cls(
            deployment,
            base_url=deployment_base_url(deployment, settings),
            api_key=deployment_key(deployment, settings),
        )

    def _headers(self, *, with_body: bool) -> dict[str, str]:
        return bearer_headers(self._api_key, with_body=with_body)

    def build_call(self, request: CompletionRequest) -> HttpCall:
        body = chat_body(
            request, self.deployment.model, num_ctx=self.deployment.model_info.context_window
        )
        return HttpCall(
            "POST",
            f"{self.base_url}/api/chat",
            self._headers(with_body=True),
            json.dumps(body).encode(),
        )

    def parse_reply(self, reply: HttpReply) -> ProviderCompletion:
        if reply.status != 200:
            raise classify_error(reply.status, reply.body, reply.headers)
        return parse_chat_response(reply.body)

    def build_probe(self) -> HttpCall:
        """``GET /api/tags``: the pulled models; ollama.com checks the key on it."""
        return HttpCall("GET", f"{self.base_url}/api/tags", self._headers(with_body=False), b"")

    def read_probe(self, reply: HttpReply) -> None:
        if reply.status != 200:
            raise classify_error(reply.status, reply.body, reply.headers)
        data = read_json(reply.body)
        if not isinstance(data, dict) or not isinstance(data.get("models"), list):
            raise InvalidResponse(
                f"/api/tags reply without a models list: {snippet(reply.body)}", status_code=200
            )


def server_root(base_url: str) -> str:
    """The server root. OLLAMA_BASE_URL names it, but ollama.com documents its API as
    ``https://ollama.com/api`` and the OpenAI-compatible deployments of the same server use
    ``.../v1``; either suffix is cut so one variable serves both protocols."""
    root = base_url.rstrip("/")
    for suffix in ("/api", "/v1"):
        if root.endswith(suffix):
            return root[: -len(suffix)]
    return root


def chat_body(
    request: CompletionRequest, model: str, *, num_ctx: int | None = None
) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if num_ctx is not None:
        options["num_ctx"] = num_ctx
    if request.max_tokens is not None:
        options["num_predict"] = request.max_tokens
    if request.temperature is not None:
        options["temperature"] = request.temperature
    if request.top_p is not None:
        options["top_p"] = request.top_p
    if request.stop:
        options["stop"] = list(request.stop)
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        "stream": False,
        "truncate": False,
    }
    if options:
        body["options"] = options
    return body


def parse_chat_response(raw: bytes) -> ProviderCompletion:
    """Read the one final object a ``stream: false`` chat answers with."""
    try:
        data = json.loads(raw)
    except ValueError:
        lines = [line for line in raw.splitlines() if line.strip()]
        what = "NDJSON (a streamed reply)" if len(lines) > 1 else "not JSON"
        raise InvalidResponse(f"200 response is {what}: {snippet(raw)}", status_code=200) from None
    if not isinstance(data, dict):
        raise InvalidResponse(f"200 response is not an object: {snippet(raw)}", status_code=200)
    if isinstance(data.get("error"), str):
        raise ServerError(f"200 from ollama with an error: {clip(data['error'])}", status_code=200)
    if data.get("done") is not True:
        raise InvalidResponse(
            "200 response is not a finished chat (done is not true)", status_code=200
        )
    message = data.get("message")
    content = message.get("content", "") if isinstance(message, dict) else None
    if not isinstance(content, str):
        raise InvalidResponse("200 response without a message.content string", status_code=200)
    raw_reason = data.get("done_reason")
    reason = raw_reason if isinstance(raw_reason, str) else None
    if reason in _NOT_GENERATION:
        raise InvalidResponse(
            f"the server answered with done_reason {reason!r}: it did not generate",
            status_code=200,
        )
    if reason == "length" and not content:
        # A thinking model (qwen3, deepseek-r1) spent num_predict in message.thinking.
        raise Incomplete(
            "the output budget ran out before any answer (done_reason length, empty content): "
            "raise max_tokens",
            status_code=200,
            provider_code=reason,
        )
    model = data.get("model")
    return ProviderCompletion(
        text=content,
        finish_reason=_FINISH_REASONS.get(str(reason), "stop"),
        provider_finish_reason=reason if isinstance(reason, str) and reason else None,
        usage=eval_usage(data),
        model=model if isinstance(model, str) else None,
    )


def eval_usage(data: Mapping[str, Any]) -> Usage | None:
    """``prompt_eval_count`` (absent when the whole prompt came from the cache) and
    ``eval_count``; None when the reply has neither."""
    prompt, completion = _count(data.get("prompt_eval_count")), _count(data.get("eval_count"))
    if prompt is None and completion is None:
        return None
    prompt, completion = prompt or 0, completion or 0
    return Usage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


def _count(value: Any) -> int | None:
    return token_count(value)


def classify_error(status: int, body: bytes, headers: Mapping[str, str]) -> ProviderError:
    """Map a non-200 reply to one error class (the table in this module's docstring)."""
    message = error_message(body)
    lowered = message.lower()
    details: dict[str, Any] = {
        "status_code": status,
        "retry_after_s": parse_retry_after(headers),
        "should_retry": parse_should_retry(headers),
    }
    text = f"{status} from ollama: {message}"
    cls: type[ProviderError]
    if status == 400:
        if any(marker in lowered for marker in _CONTEXT_MARKERS):
            cls = ContextLength
        elif any(marker in lowered for marker in _CANNOT_SERVE):
            cls = ModelNotFound
        else:
            cls = BadRequest
    elif status in _STATUS_CLASSES:
        cls = _STATUS_CLASSES[status]
    elif status >= 500:
        cls = ServerError
    else:
        cls = InvalidResponse
    return cls(text, **details)


def error_message(body: bytes) -> str:
    """The ``error`` of Ollama's ``{"error": "..."}`` body, or the body's text."""
    try:
        data = json.loads(body)
    except ValueError:
        return snippet(body) or "(empty body)"
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return clip(data["error"])
    return snippet(body)
