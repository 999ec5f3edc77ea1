"""Replicate's predictions API, which is not OpenAI's (replicate SDK 1.0.7: ``client.py``,
``prediction.py``, ``model.py``, ``run.py``, ``exceptions.py``).

A completion is a prediction: ``POST /v1/models/{owner}/{name}/predictions`` (or
``POST /v1/predictions`` with ``"version"`` for ``owner/name:version``) with ``{"input":
{...}}`` and ``Prefer: wait=N`` (the SDK's ``run`` sends ``Prefer: wait``, which holds the reply
up to 60 s). The reply (201) is the prediction: ``status`` ``starting`` / ``processing`` /
``succeeded`` / ``failed`` / ``canceled``, ``output`` (a language model's is a list of string
tokens, to be joined), ``error``, ``metrics`` (``input_token_count``, ``output_token_count``,
``predict_time``), ``urls.get`` / ``urls.cancel``. Until it is final, ``GET
/v1/predictions/{id}`` every ``REPLICATE_POLL_INTERVAL`` seconds (the SDK's 0.5 s default);
work given up on is called off with ``POST /v1/predictions/{id}/cancel`` (workers.exchange).
``urls`` are followed only when they are under the deployment's base URL: a reply naming
another host never gets the token.

The input is the language models' schema (meta/meta-llama-3-*-instruct and the like):
``prompt``, ``system_prompt`` (the system messages), ``max_tokens``, ``temperature``,
``top_p``, ``stop_sequences`` (comma-separated, as those models take it). A conversation of
more than one user turn is written into ``prompt`` as a transcript.

Errors are RFC 7807 problem details, ``{"title", "detail", "status"}``: 401 a bad token,
402 no credit, 404 an unknown model, 422 input validation ("Invalid version or not
permitted" for a version that is not there), 429 throttled (``Retry-After``, and
``retry_after`` in the body). A prediction that ``failed`` carries the model's error.
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
    InvalidResponse,
    ModelNotFound,
    Overloaded,
    PermissionDenied,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
)
from routing.models import CompletionRequest, Message, ProviderCompletion, Usage
from workers.http import HttpCall, HttpReply
from workers.providers.base import bearer_headers, deployment_base_url, deployment_key
from workers.providers.polling import Pending
from workers.providers.reading import clip, read_json, snippet, token_count
from workers.providers.retry_headers import parse_retry_after
from workers.settings import WorkerSettings

FINAL = frozenset({"succeeded", "failed", "canceled"})
#: What ``Prefer: wait`` holds at most, in seconds.
MAX_WAIT_S = 60
#: The SDK retries no POST (its RetryTransport retries GET and the like only).
DEFAULT_RETRIES = 0
_CONTEXT_MARKERS = ("context length", "context window", "too long", "maximum input length")


class ReplicateAdapter:
    def __init__(
        self,
        deployment: DeploymentConfig,
        *,
        base_url: str,
        api_key: SecretStr | None,
        poll_interval_s: float = 0.5,
    ) -> None:
        self.deployment = deployment
        self.base_url = base_url.rstrip("/")
        self.default_retries = DEFAULT_RETRIES
        self.poll_interval_s = poll_interval_s
        self._api_key = api_key
        self.model_ref, _, self.version = deployment.model.partition(":")

    @classmethod
    def from_settings(
        cls, deployment: DeploymentConfig, settings: WorkerSettings
    ) -> ReplicateAdapter:
        return cls(
            deployment,
            base_url=deployment_base_url(deployment, settings),
            api_key=deployment_key(deployment, settings),
            poll_interval_s=settings.replicate_poll_interval,
        )

    # --- the call -----------------------------------------------------------------------------

    def build_call(self, request: CompletionRequest) -> HttpCall:
        return self.build_start(request, wait_s=MAX_WAIT_S)

    def build_start(self, request: CompletionRequest, *, wait_s: int) -> HttpCall:
        body: dict[str, Any] = {"input": prediction_input(request)}
        if self.version:
            body["version"] = self.version
            url = f"{self.base_url}/v1/predictions"
        else:
            url = f"{self.base_url}/v1/models/{self.model_ref}/predictions"
        headers = bearer_headers(self._api_key, with_body=True)
        if wait_s >= MAX_WAIT_S:
            headers["prefer"] = "wait"
        elif wait_s >= 1:
            headers["prefer"] = f"wait={wait_s}"
        return HttpCall("POST", url, headers, json.dumps(body).encode())

    def pending(self, reply: HttpReply) -> Pending | None:
        if reply.status not in (200, 201):
            return None
        try:
            prediction = _prediction(reply.body)
        except ProviderError:
            return None
        status, work_id = prediction.get("status"), prediction.get("id")
        if status in FINAL or not isinstance(work_id, str) or not isinstance(status, str):
            return None
        urls = _mapping(prediction.get("urls"))
        headers = bearer_headers(self._api_key, with_body=False)
        own = f"{self.base_url}/v1/predictions/{work_id}"
        return Pending(
            work_id=work_id,
            status=status,
            poll=HttpCall("GET", self._own_url(urls.get("get"), own), headers, b""),
            cancel=HttpCall(
                "POST", self._own_url(urls.get("cancel"), f"{own}/cancel"), headers, b""
            ),
            interval_s=self.poll_interval_s,
        )

    def _own_url(self, given: object, fallback: str) -> str:
        if isinstance(given, str) and given.startswith(f"{self.base_url}/"):
            return given
        return fallback

    def parse_reply(self, reply: HttpReply) -> ProviderCompletion:
        if reply.status not in (200, 201):
            raise classify_replicate_error(reply.status, reply.body, reply.headers)
        prediction = _prediction(reply.body)
        status = prediction.get("status")
        if status == "succeeded":
            return _completion(prediction)
        if status == "failed":
            raise _model_failure(str(prediction.get("error") or "the prediction failed"))
        if status == "canceled":
            raise ServerError("the prediction was canceled", status_code=reply.status)
        if status in ("starting", "processing"):
            raise ProviderTimeout(
                f"prediction {prediction.get('id')} still {status} when the reply came",
                status_code=reply.status,
            )
        raise InvalidResponse(
            f"a prediction without a known status: {snippet(reply.body)}",
            status_code=reply.status,
        )

    # --- the credential probe -----------------------------------------------------------------

    def build_probe(self) -> HttpCall:
        """``GET /v1/account``: who the token belongs to (free)."""
        headers = bearer_headers(self._api_key, with_body=False)
        return HttpCall("GET", f"{self.base_url}/v1/account", headers, b"")

    def read_probe(self, reply: HttpReply) -> None:
        if reply.status != 200:
            raise classify_replicate_error(reply.status, reply.body, reply.headers)


def _prediction(body: bytes) -> dict[str, Any]:
    prediction = read_json(body)
    if not isinstance(prediction, dict):
        raise InvalidResponse(f"a reply that is not a prediction: {snippet(body)}", status_code=200)
    return prediction


def prediction_input(request: CompletionRequest) -> dict[str, Any]:
    system = "\n\n".join(m.content for m in request.messages if m.role == "system")
    turns = [m for m in request.messages if m.role != "system"]
    values: dict[str, Any] = {"prompt": _prompt(turns)}
    if system:
        values["system_prompt"] = system
    if request.max_tokens is not None:
        values["max_tokens"] = request.max_tokens
    if request.temperature is not None:
        values["temperature"] = request.temperature
    if request.top_p is not None:
        values["top_p"] = request.top_p
    if request.stop:
        values["stop_sequences"] = ",".join(request.stop)
    return values


def _prompt(turns: list[Message]) -> str:
    if len(turns) == 1 and turns[0].role == "user":
        return turns[0].content
    lines = [f"{'User' if m.role == 'user' else 'Assistant'}: {m.content}" for m in turns]
    if turns and turns[-1].role == "user":
        lines.append("Assistant:")
    return "\n\n".join(lines)


def _completion(prediction: dict[str, Any]) -> ProviderCompletion:
    output = prediction.get("output")
    if isinstance(output, list) and all(isinstance(token, str) for token in output):
        text = "".join(output)
    elif isinstance(output, str):
        text = output
    else:
        raise InvalidResponse(
            f"a succeeded prediction whose output is not text: {clip(repr(output))}",
            status_code=200,
        )
    metrics = _mapping(prediction.get("metrics"))
    prompt = token_count(metrics.get("input_token_count"))
    completion = token_count(metrics.get("output_token_count"))
    usage = (
        Usage(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=prompt + completion,
        )
        if prompt is not None and completion is not None
        else None
    )
    given = _mapping(prediction.get("input"))
    limit = token_count(given.get("max_tokens"))
    length = limit is not None and completion is not None and completion >= limit
    return ProviderCompletion(
        text=text,
        finish_reason="length" if length else "stop",
        provider_finish_reason="succeeded",
        usage=usage,
        model=prediction.get("model") if isinstance(prediction.get("model"), str) else None,
        response_id=prediction.get("id") if isinstance(prediction.get("id"), str) else None,
    )


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _model_failure(error: str) -> ProviderError:
    lowered = error.lower()
    if any(marker in lowered for marker in _CONTEXT_MARKERS):
        return ContextLength(f"the prediction failed: {clip(error)}", status_code=200)
    return ServerError(f"the prediction failed: {clip(error)}", status_code=200)


def problem_details(body: bytes) -> tuple[str, float | None]:
    """(title and detail, the body's retry_after) from a problem-details body, or its text."""
    try:
        data = json.loads(body)
    except ValueError:
        return snippet(body) or "(empty body)", None
    if not isinstance(data, dict):
        return snippet(body), None
    parts = [str(data[k]) for k in ("title", "detail") if data.get(k)]
    retry = data.get("retry_after")
    retry_s = float(retry) if isinstance(retry, int | float) and retry >= 0 else None
    return clip(": ".join(parts) or snippet(body)), retry_s


def classify_replicate_error(status: int, body: bytes, headers: Mapping[str, str]) -> ProviderError:
    message, body_retry = problem_details(body)
    retry_after = parse_retry_after(headers)
    details: dict[str, Any] = {
        "status_code": status,
        "retry_after_s": retry_after if retry_after is not None else body_retry,
    }
    text = f"{status} from replicate: {message}"
    lowered = message.lower()
    if status == 401:
        return AuthFailed(text, **details)
    if status in (402, 403):  # no credit, or a token that may not run this model
        return PermissionDenied(text, **details)
    if status == 404 or (status == 422 and "invalid version" in lowered):
        return ModelNotFound(text, **details)
    if status == 429:
        return RateLimited(text, **details)
    if status in (400, 413, 422):
        if any(marker in lowered for marker in _CONTEXT_MARKERS):
            return ContextLength(text, **details)
        return BadRequest(text, **details)
    if status == 503:
        return Overloaded(text, **details)
    if status == 504:
        return ProviderTimeout(text, **details)
    if status >= 500 or status == 409:
        return ServerError(text, **details)
    return InvalidResponse(text, **details)
