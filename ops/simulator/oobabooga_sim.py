"""A simulated Text Generation WebUI (oobabooga) API, as its ``modules/api/script.py`` answers
(oobabooga/text-generation-webui, May 2026):

* ``POST /v1/chat/completions`` and ``GET /v1/models``, behind ``Authorization: Bearer
  <--api-key>`` when the server was started with one: a wrong or missing key is FastAPI's
  ``401 {"detail": "Unauthorized"}``, not OpenAI's error envelope;
* one model at a time, the one loaded (``models[0]``): the body's ``model`` does not choose
  it, the reply names the loaded one, and ``/v1/models`` lists only it (``owned_by: user``,
  ``created: 0``);
* its own errors (``InvalidRequestError``) in OpenAI's envelope with ``code: null``, a body
  its schema refuses as FastAPI's 422 ``{"detail": [...]}``, and a Host header other than
  localhost refused with 400 ``{"detail": "Invalid host header"}`` unless started with
  ``--listen`` (``listen=True`` here).
"""

from __future__ import annotations

from typing import Any

from ops.simulator.base import Endpoint, Incoming, Reply, retry_after_headers
from ops.simulator.faults import Faults
from ops.simulator.openai_sim import OpenAISimulator


def openai_error(status: int, message: str, param: str | None = None) -> Reply:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return Reply.json(
        status, {"error": {"message": message, "type": kind, "param": param, "code": None}}
    )


class OobaboogaSimulator(OpenAISimulator):
    protocol = "oobabooga"

    def __init__(self, *, listen: bool = False, **kwargs: Any) -> None:
        kwargs["models"] = kwargs.get("models") or ["Qwen3-8B-Q4_K_M.gguf"]
        super().__init__(**kwargs)
        self.listen = listen

    def match(self, incoming: Incoming) -> Endpoint | None:
        if incoming.method == "POST" and incoming.path == "/v1/chat/completions":
            return "generate"
        if incoming.method == "GET" and incoming.path == "/v1/models":
            return "probe"
        return None

    def not_found(self, incoming: Incoming) -> Reply:
        return Reply.json(404, {"detail": "Not Found"})

    def authenticate(self, incoming: Incoming) -> Reply | None:
        host = incoming.headers.get("host", "").split(":")[0]
        if not self.listen and host not in ("localhost", "127.0.0.1"):
            return Reply.json(400, {"detail": "Invalid host header"})
        if self.api_key and incoming.headers.get("authorization") != f"Bearer {self.api_key}":
            return Reply.json(401, {"detail": "Unauthorized"})
        return None

    def validate(self, incoming: Incoming) -> Reply | None:
        request = incoming.json
        if not isinstance(request, dict):
            return Reply.json(
                422,
                {"detail": [{"type": "json_invalid", "loc": ["body"], "msg": "JSON decode error"}]},
            )
        messages = request.get("messages")
        if not messages:
            return openai_error(400, "messages is required", "messages")
        for message in messages:
            if not isinstance(message, dict) or "role" not in message:
                return openai_error(400, "messages: missing role", "messages")
            if message["role"] == "function":
                return openai_error(400, "role: function is not supported.", "messages")
            if "content" not in message:
                return openai_error(400, "messages: missing content", "messages")
        max_tokens = request.get("max_tokens")
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens <= 0):
            return openai_error(400, "max_tokens must be greater than 0.", "max_tokens")
        return None

    def error(self, status: int, faults: Faults) -> Reply:
        message = "Service unavailable, please try again later." if status == 503 else None
        reply = openai_error(status, message or f"Error {status}")
        reply.headers = retry_after_headers(faults)
        return reply

    def success(self, incoming: Incoming) -> Reply:
        loaded = dict(incoming.json, model=self.models[0])
        return super().success(
            Incoming(
                incoming.method,
                incoming.path,
                incoming.raw_path,
                incoming.query,
                incoming.raw_query,
                incoming.headers,
                incoming.body,
                loaded,
            )
        )

    def probe(self, incoming: Incoming) -> Reply:
        data = [{"id": self.models[0], "object": "model", "created": 0, "owned_by": "user"}]
        return Reply.json(200, {"object": "list", "data": data})
