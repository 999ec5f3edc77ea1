"""A simulated Replicate predictions API (workers/providers/replicate.py says what it sends).

Predictions run in the background for ``run_s`` seconds, as a model's would: ``starting``,
then ``processing``, then ``succeeded`` with the output as a list of string tokens and
``metrics`` (``input_token_count``, ``output_token_count``, ``predict_time``), or ``failed``
with ``model_error`` when that is set. A create holds its reply while the prediction runs, up
to what ``Prefer: wait[=N]`` asks (60 s at most) and answers 201 with the prediction as it
stands then; without the header it answers at once. ``GET /v1/predictions/{id}`` polls,
``POST /v1/predictions/{id}/cancel`` cancels (``canceled`` lists what was), ``GET /v1/account``
is the probe. ``urls.get`` / ``urls.cancel`` name this server as the request's Host did.

The shared faults apply to creates (the polls and cancels of a ``down`` simulator fail too);
errors are Replicate's problem details ``{"title", "detail", "status"}`` (a 429 also says
``retry_after`` in the body, as Replicate does), an unknown model 404, an unknown version 422
"Invalid version or not permitted", an input without a prompt 422 with ``invalid_fields``.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ops.simulator.base import (
    Endpoint,
    Incoming,
    ProviderSimulator,
    Receive,
    Reply,
    estimate_tokens,
    reply_text,
    retry_after_headers,
)
from ops.simulator.faults import Faults

_CREATE = re.compile(r"^/v1/models/(?P<owner>[^/]+)/(?P<name>[^/]+)/predictions$")
_ONE = re.compile(r"^/v1/predictions/(?P<id>[a-z0-9]+)(?P<cancel>/cancel)?$")
_TITLES: dict[int, tuple[str, str]] = {
    400: ("Bad request", "The request could not be understood."),
    401: ("Unauthenticated", "You did not pass a valid authentication token"),
    402: (
        "Insufficient credit",
        "You have insufficient credit to run this model. Go to "
        "https://replicate.com/account/billing#billing to purchase credit. Once you purchase "
        "credit, please wait a few minutes before trying again.",
    ),
    403: ("Forbidden", "You do not have permission to run this model."),
    404: ("Not found", "The requested resource could not be found."),
    429: ("Request was throttled.", "Request was throttled. Your rate limit resets in ~{s}s."),
    500: ("Internal server error", "An unexpected error occurred."),
    503: ("Service unavailable", "The service is temporarily unavailable."),
}


def problem(status: int, title: str, detail: str, **extra: Any) -> Reply:
    return Reply.json(status, {"title": title, "detail": detail, "status": status, **extra})


def _iso(at: float | None) -> str | None:
    if at is None:
        return None
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class _Prediction:
    id: str
    model: str
    version: str
    input: dict[str, Any]
    created: float
    text: str
    base_url: str
    canceled_at: float | None = None


class ReplicateSimulator(ProviderSimulator):
    protocol = "replicate"

    def __init__(
        self,
        *,
        run_s: float = 0.0,
        model_error: str | None = None,
        max_wait_s: float = 60.0,
        **kwargs: Any,
    ) -> None:
        kwargs["models"] = kwargs.get("models") or ["meta/meta-llama-3-8b-instruct"]
        super().__init__(**kwargs)
        self.run_s = run_s
        #: The most a ``Prefer: wait`` holds (Replicate's 60 s; tests shorten it to poll soon).
        self.max_wait_s = max_wait_s
        self.model_error = model_error
        self.predictions: dict[str, _Prediction] = {}
        self.polls = 0
        self.canceled: list[str] = []
        #: Each model's latest version id, as ``owner/name:version`` names it.
        self.versions = {m: hashlib.sha256(m.encode()).hexdigest() for m in self.models}

    # --- routing ------------------------------------------------------------------------------

    def match(self, incoming: Incoming) -> Endpoint | None:
        if incoming.method == "POST" and (
            _CREATE.match(incoming.path) or incoming.path == "/v1/predictions"
        ):
            return "generate"
        if incoming.method == "GET" and incoming.path == "/v1/account":
            return "probe"
        one = _ONE.match(incoming.path)
        if one and incoming.method == ("POST" if one["cancel"] else "GET"):
            return "probe"  # answered by _follow_up, not counted as a credential probe
        return None

    async def _serve(self, kind: Endpoint, incoming: Incoming, receive: Receive) -> Reply | None:
        one = _ONE.match(incoming.path)
        if one:
            return self._follow_up(incoming, one["id"], cancel=bool(one["cancel"]))
        reply = await super()._serve(kind, incoming, receive)
        if kind != "generate" or reply is None or "id" not in incoming.params:
            return reply  # a refusal, an injected fault or a malformed body
        wait = min(_prefer_wait(incoming.headers.get("prefer", "")), self.max_wait_s)
        prediction = self.predictions[incoming.params["id"]]
        if wait:
            remaining = prediction.created + self.run_s - time.time()
            await asyncio.sleep(max(0.0, min(remaining, wait)))
        return Reply.json(201, self._render(prediction))

    def _follow_up(self, incoming: Incoming, prediction_id: str, *, cancel: bool) -> Reply:
        denied = self.authenticate(incoming)
        if denied is not None:
            return denied
        if self.state.faults.down:
            return self.error(self.state.faults.fail_status, self.state.faults)
        prediction = self.predictions.get(prediction_id)
        if prediction is None:
            return problem(404, *_TITLES[404])
        if cancel:
            if self._status(prediction) not in ("succeeded", "failed", "canceled"):
                prediction.canceled_at = time.time()
            self.canceled.append(prediction_id)
        else:
            self.polls += 1
        return Reply.json(200, self._render(prediction))

    def not_found(self, incoming: Incoming) -> Reply:
        return problem(404, *_TITLES[404])

    # --- the protocol -------------------------------------------------------------------------

    def authenticate(self, incoming: Incoming) -> Reply | None:
        if self.api_key is None:
            return None
        header = incoming.headers.get("authorization", "")
        if not header.lower().startswith("bearer ") or header[7:].strip() != self.api_key:
            return problem(401, *_TITLES[401])
        return None

    def validate(self, incoming: Incoming) -> Reply | None:
        body = incoming.json
        if not isinstance(body, dict):
            return problem(400, *_TITLES[400])
        created = _CREATE.match(incoming.path)
        if created:
            model = f"{created['owner']}/{created['name']}"
            if model not in self.models:
                return problem(404, *_TITLES[404])
        else:
            by_version = {v: m for m, v in self.versions.items()}
            if body.get("version") not in by_version:
                return problem(
                    422,
                    "Invalid version or not permitted",
                    "The specified version does not exist (or perhaps you don't have "
                    "permission to use it?)",
                )
            model = by_version[body["version"]]
        incoming.params["model"] = model
        invalid = _input_problems(body.get("input"))
        if invalid:
            return problem(
                422,
                "Input validation failed",
                "\n".join(f"- {p['field']}: {p['description']}" for p in invalid),
                invalid_fields=invalid,
            )
        return None

    def success(self, incoming: Incoming) -> Reply:
        model = incoming.params["model"]
        values = incoming.json["input"]
        text = reply_text(self.name, model, values["prompt"])
        limit = values.get("max_tokens")
        if isinstance(limit, int) and estimate_tokens(text) > limit:
            text = text[: limit * 4]
        prediction = _Prediction(
            id=uuid.uuid4().hex[:26],
            model=model,
            version=self.versions[model],
            input=values,
            created=time.time(),
            text=text,
            base_url=f"http://{incoming.headers.get('host', '127.0.0.1')}",
        )
        self.predictions[prediction.id] = prediction
        incoming.params["id"] = prediction.id
        return Reply.json(201, self._render(prediction))

    def error(self, status: int, faults: Faults) -> Reply:
        title, detail = _TITLES.get(status, (f"Error {status}", f"The request failed ({status})."))
        extra: dict[str, Any] = {}
        if status == 429:
            seconds = faults.retry_after_s or 1
            detail = detail.format(s=f"{seconds:g}")
            extra["retry_after"] = seconds
        reply = problem(status, title, detail, **extra)
        reply.headers = retry_after_headers(faults)
        return reply

    def malformed(self) -> Reply:
        return Reply(201, b'{"id": "broken", "status": "succeeded", "output": [')

    def probe(self, incoming: Incoming) -> Reply:
        return Reply.json(
            200,
            {
                "type": "user",
                "username": "turnout-sim",
                "name": "turnout simulator",
                "github_url": None,
            },
        )

    # --- a prediction's life ------------------------------------------------------------------

    def _status(self, prediction: _Prediction) -> str:
        if prediction.canceled_at is not None:
            return "canceled"
        elapsed = time.time() - prediction.created
        if elapsed < self.run_s:
            return "starting" if elapsed < self.run_s / 4 else "processing"
        return "failed" if self.model_error else "succeeded"

    def _render(self, prediction: _Prediction) -> dict[str, Any]:
        status = self._status(prediction)
        done = status in ("succeeded", "failed", "canceled")
        started = prediction.created + min(self.run_s / 4, 0.05)
        completed = None
        if done:
            completed = prediction.canceled_at or prediction.created + self.run_s
        output = re.findall(r"\s*\S+", prediction.text) if status == "succeeded" else None
        metrics: dict[str, Any] = {}
        if status == "succeeded":
            prompt = str(prediction.input.get("prompt", ""))
            system = str(prediction.input.get("system_prompt", ""))
            tokens = estimate_tokens(prediction.text)
            metrics = {
                "input_token_count": estimate_tokens(prompt + system),
                "output_token_count": tokens,
                "predict_time": round(self.run_s, 3),
                "tokens_per_second": round(tokens / max(self.run_s, 0.001), 1),
            }
        base = f"{prediction.base_url}/v1/predictions/{prediction.id}"
        return {
            "id": prediction.id,
            "model": prediction.model,
            "version": prediction.version,
            "input": prediction.input,
            "logs": "",
            "output": output,
            "data_removed": False,
            "error": self.model_error if status == "failed" else None,
            "status": status,
            "created_at": _iso(prediction.created),
            "started_at": _iso(started) if status != "starting" else None,
            "completed_at": _iso(completed),
            "urls": {
                "cancel": f"{base}/cancel",
                "get": base,
                "stream": f"https://stream.replicate.com/v1/files/{prediction.id}",
                "web": f"https://replicate.com/p/{prediction.id}",
            },
            "metrics": metrics,
        }


def _prefer_wait(header: str) -> float:
    """Seconds a ``Prefer: wait`` or ``Prefer: wait=N`` header asks to hold, at most 60."""
    value = header.strip().lower()
    if value == "wait":
        return 60.0
    if value.startswith("wait="):
        try:
            return max(0.0, min(60.0, float(value[5:])))
        except ValueError:
            return 0.0
    return 0.0


def _input_problems(values: Any) -> list[dict[str, str]]:
    if not isinstance(values, dict):
        return [{"type": "required", "field": "input", "description": "input is required"}]
    problems = []
    if not isinstance(values.get("prompt"), str) or not values["prompt"]:
        problems.append({"type": "required", "field": "input", "description": "prompt is required"})
    ranges = {"max_tokens": (1, 1_000_000), "temperature": (0, 5), "top_p": (0, 1)}
    for name, (low, high) in ranges.items():
        value = values.get(name)
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if value is not None and (not number or not low <= value <= high):
            problems.append(
                {
                    "type": "number_range",
                    "field": f"input.{name}",
                    "description": f"Must be between {low} and {high}",
                }
            )
    return problems
