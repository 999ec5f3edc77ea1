"""Simulated Hugging Face endpoints: the Inference Providers router and a TGI / Inference
Endpoint (workers/providers/huggingface.py says what each sends and answers).

``HuggingFaceSimulator`` is the router and the Hub in one server (tests point ``HF_ENDPOINT``
at it): ``POST /v1/chat/completions`` for Hub model ids, a ``:provider`` suffix allowed, and a
model outside ``models`` refused with the router's 400 ``model_not_supported``;
``GET /api/whoami-v2`` answers who the token is, a fine-grained one with the permissions in
``permissions`` (None: a classic "read" token).

``TGISimulator`` is one TGI serving one model (``models[0]``, whatever the body's ``model``
says, as TGI does): the Messages API, ``GET /v1/models``, and TGI's own error body ``{"error",
"error_type"}``: a prompt plus ``max_tokens`` over ``max_total_tokens`` is its 422 validation
error, an injected 429 its ``overloaded``, a 424 its generation error. Without ``api_key`` it
takes any caller (a self-hosted TGI); with one it is a protected Inference Endpoint.

Bodies marked [obs] in the comments are as public issue threads quote them, not read in source.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from ops.simulator.base import (
    Endpoint,
    Incoming,
    Reply,
    estimate_tokens,
    reply_text,
    retry_after_headers,
)
from ops.simulator.faults import Faults
from ops.simulator.openai_sim import OpenAISimulator

#: [obs] What the Hub and the endpoints answer a token they do not know.
HUB_BAD_TOKEN = "Invalid credentials in Authorization header"  # noqa: S105 (a message)
ENDPOINT_BAD_TOKEN = "Authorization header is correct, but the token seems invalid"  # noqa: S105
#: The router's provider suffixes (huggingface_hub's PROVIDER_T, and its policies).
ROUTER_PROVIDERS = frozenset(
    {
        "cerebras",
        "cohere",
        "fal-ai",
        "featherless-ai",
        "fireworks-ai",
        "groq",
        "hf-inference",
        "hyperbolic",
        "nebius",
        "novita",
        "nscale",
        "sambanova",
        "scaleway",
        "together",
        "fastest",
        "cheapest",
        "preferred",
    }
)


def _bearer(incoming: Incoming) -> str:
    header = incoming.headers.get("authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else ""


class HuggingFaceSimulator(OpenAISimulator):
    """The router (``/v1``) and the Hub's ``/api/whoami-v2``."""

    protocol = "huggingface"

    def __init__(self, *, permissions: list[str] | None = None, **kwargs: Any) -> None:
        kwargs["models"] = kwargs.get("models") or ["meta-llama/Llama-3.1-8B-Instruct"]
        super().__init__(**kwargs)
        self.permissions = permissions

    def match(self, incoming: Incoming) -> Endpoint | None:
        if incoming.method == "GET" and incoming.path == "/api/whoami-v2":
            return "probe"
        if incoming.method == "POST" and incoming.path == "/v1/chat/completions":
            return "generate"
        return None

    def authenticate(self, incoming: Incoming) -> Reply | None:
        if self.api_key is None:
            return None
        if _bearer(incoming) != self.api_key:
            message = HUB_BAD_TOKEN if incoming.path.startswith("/api/") else ENDPOINT_BAD_TOKEN
            return Reply.json(401, {"error": message})
        return None

    def validate(self, incoming: Incoming) -> Reply | None:
        problem = super().validate(incoming)
        if problem is not None:
            return problem
        model = incoming.json["model"]
        base, _, provider = model.partition(":")
        if base not in self.models or (provider and provider not in ROUTER_PROVIDERS):
            return Reply.json(
                400,
                {
                    "error": {
                        "message": f"The requested model '{model}' is not supported by any "
                        "provider you have enabled.",
                        "type": "invalid_request_error",
                        "param": "model",
                        "code": "model_not_supported",
                    }
                },
            )
        return None

    def error(self, status: int, faults: Faults) -> Reply:
        if status == 402:  # [obs] the monthly credits are spent
            return Reply.json(
                402,
                {
                    "error": "You have exceeded your monthly included credits for Inference "
                    "Providers. Subscribe to PRO to get 20x more monthly included credits."
                },
                retry_after_headers(faults),
            )
        return super().error(status, faults)

    def probe(self, incoming: Incoming) -> Reply:
        token: dict[str, Any] = {"displayName": "turnout", "role": "read"}
        if self.permissions is not None:
            token = {
                "displayName": "turnout",
                "role": "fineGrained",
                "fineGrained": {"canReadGatedRepos": False, "global": self.permissions},
            }
        return Reply.json(
            200,
            {
                "type": "user",
                "id": "0123456789abcdef01234567",
                "name": "turnout-sim",
                "fullname": "turnout simulator",
                "auth": {"type": "access_token", "accessToken": token},
            },
        )


_TGI_ERRORS = {
    400: ("Input validation error: the request is not well formed", "validation"),
    422: ("Input validation error: `temperature` must be strictly positive", "validation"),
    424: ("Request failed during generation: Server error: CUDA out of memory", "generation"),
    429: ("Model is overloaded", "overloaded"),
    500: ("Request failed during generation: incomplete generation", "incomplete_generation"),
}


def tgi_error(status: int, message: str, error_type: str) -> Reply:
    return Reply.json(status, {"error": message, "error_type": error_type})


class TGISimulator(OpenAISimulator):
    """One TGI (or Inference Endpoint) serving ``models[0]``."""

    protocol = "huggingface"
    #: TGI's --max-total-tokens: prompt plus max_tokens may not pass it.
    max_total_tokens = 4096

    def __init__(self, **kwargs: Any) -> None:
        kwargs["models"] = kwargs.get("models") or ["tgi"]
        super().__init__(**kwargs)

    def match(self, incoming: Incoming) -> Endpoint | None:
        if incoming.method == "POST" and incoming.path == "/v1/chat/completions":
            return "generate"
        if incoming.method == "GET" and incoming.path == "/v1/models":
            return "probe"
        return None

    def not_found(self, incoming: Incoming) -> Reply:
        return Reply(404, b"", content_type=b"text/plain")  # axum's bare 404

    def authenticate(self, incoming: Incoming) -> Reply | None:
        if self.api_key is None or _bearer(incoming) == self.api_key:
            return None
        return Reply.json(401, {"error": ENDPOINT_BAD_TOKEN})

    def validate(self, incoming: Incoming) -> Reply | None:
        request = incoming.json
        if not isinstance(request, dict) or not isinstance(request.get("messages"), list):
            return Reply(422, b"Failed to deserialize the JSON body into the target type")
        temperature = request.get("temperature")
        if temperature is not None and temperature <= 0:
            return tgi_error(422, *_TGI_ERRORS[422])
        prompt_tokens = sum(estimate_tokens(str(m.get("content", ""))) for m in request["messages"])
        wanted = request.get("max_tokens") or 100
        if prompt_tokens + wanted > self.max_total_tokens:
            return tgi_error(
                422,
                f"Input validation error: `inputs` tokens + `max_new_tokens` must be <= "
                f"{self.max_total_tokens}. Given: {prompt_tokens} `inputs` tokens and "
                f"{wanted} `max_new_tokens`",
                "validation",
            )
        return None

    def error(self, status: int, faults: Faults) -> Reply:
        message, error_type = _TGI_ERRORS.get(status, (f"error {status}", "unknown"))
        if status == 503:  # an Inference Endpoint scaled to zero, starting up
            message, error_type = "Service Unavailable", "unavailable"
        reply = tgi_error(status, message, error_type)
        reply.headers = retry_after_headers(faults)
        return reply

    def success(self, incoming: Incoming) -> Reply:
        request = incoming.json
        model = self.models[0]
        prompt = next(
            (
                str(m.get("content", ""))
                for m in reversed(request["messages"])
                if m.get("role") == "user"
            ),
            "",
        )
        text = reply_text(self.name, model, prompt)
        limit = request.get("max_tokens")
        finish_reason = "stop"
        if isinstance(limit, int) and estimate_tokens(text) > limit:
            text, finish_reason = text[: limit * 4], "length"
        prompt_tokens = sum(estimate_tokens(str(m.get("content", ""))) for m in request["messages"])
        completion_tokens = estimate_tokens(text)
        return Reply.json(
            200,
            {
                "object": "chat.completion",
                "id": "",
                "created": int(time.time()),
                "model": model,
                "system_fingerprint": "3.3.4-sha-9a7ac4b",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "logprobs": None,
                        "finish_reason": finish_reason,
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            },
        )

    def probe(self, incoming: Incoming) -> Reply:
        created = int(time.time())
        data = [
            {"id": m, "object": "model", "created": created, "owned_by": m} for m in self.models
        ]
        return Reply.json(200, {"object": "list", "data": data})

    def response_headers(
        self, incoming: Incoming, processing_s: float
    ) -> list[tuple[bytes, bytes]]:
        return [
            (b"x-request-id", uuid.uuid4().hex.encode()),
            (b"x-compute-type", b"gpu+optimized"),
            (b"x-total-time", str(int(processing_s * 1000)).encode()),
        ]
