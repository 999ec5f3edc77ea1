"""AI21 Studio (Jamba): ``POST https://api.ai21.com/studio/v1/chat/completions``.

Built from the ai21 SDK's source (AI21Labs/ai21-python 4.2.0: ``ai21/http_client/
base_http_client.py``, ``clients/studio/resources/chat/base_chat_completions.py``,
``ai21_env_config.py``), since the SDK itself cannot be installed beside turnout (it pins
tenacity below 9). What the SDK sends, we send: ``Authorization: Bearer $AI21_API_KEY``,
``Content-Type: application/json``; a body of ``model``, ``messages``, ``max_tokens``,
``temperature``, ``top_p``, ``stop`` (only those given) and always ``"stream": false``. The
base URL is ``AI21_API_HOST`` (it includes ``/studio/v1``), the retries ``AI21_NUM_RETRIES``
(the SDK's default is none).

The reply is OpenAI's shape (``id``, ``choices[].message``, ``finish_reason``, ``usage``).
Errors are the statuses the SDK names (400, 401, 403, 404, 408, 422, 424 model error, 429,
500, 503, 530 internal dependency) with a FastAPI body, ``{"detail": "..."}`` (a list of
field errors for a 422 the schema refuses): the OpenAI family's table reads them, 424 and 530
as server errors. The probe is ``GET /library/files``, the file library's list: free and
authenticated, what ``client.library.files.list()`` sends.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from routing.config import DeploymentConfig
from routing.errors import ContextLength, ProviderError, ServerError
from routing.models import CompletionRequest, ProviderCompletion
from workers.http import HttpCall, HttpReply
from workers.providers.base import deployment_base_url, deployment_key
from workers.providers.openai_compat import (
    OpenAICompatibleAdapter,
    classify_error,
    error_details,
    parse_chat_completion,
)
from workers.providers.openai_messages import chat_body
from workers.providers.retry_headers import parse_retry_after
from workers.settings import WorkerSettings


class AI21Adapter(OpenAICompatibleAdapter):
    @classmethod
    def from_settings(cls, deployment: DeploymentConfig, settings: WorkerSettings) -> AI21Adapter:
        adapter = cls(
            deployment,
            base_url=deployment_base_url(deployment, settings),
            api_key=deployment_key(deployment, settings),
        )
        adapter.default_retries = settings.ai21_num_retries
        return adapter

    def build_call(self, request: CompletionRequest) -> HttpCall:
        body = chat_body(request, self.deployment.model, "max_tokens")
        body["stream"] = False
        return HttpCall("POST", self.url, self._headers(), json.dumps(body).encode())

    def build_probe(self) -> HttpCall:
        headers = {k: v for k, v in self._headers().items() if k != "content-type"}
        return HttpCall("GET", f"{self.base_url}/library/files", headers, b"")

    def read_probe(self, reply: HttpReply) -> None:
        if reply.status != 200:
            raise classify_ai21_error(reply.status, reply.body, reply.headers)

    def parse_reply(self, reply: HttpReply) -> ProviderCompletion:
        if reply.status != 200:
            raise classify_ai21_error(reply.status, reply.body, reply.headers)
        return parse_chat_completion(reply.body)


def classify_ai21_error(status: int, body: bytes, headers: Mapping[str, str]) -> ProviderError:
    """424 (the model failed) and a 422 about the context window are AI21's own; the rest
    reads as the OpenAI family's."""
    message, code = error_details(body)
    details: dict[str, Any] = {
        "status_code": status,
        "retry_after_s": parse_retry_after(headers),
        "provider_code": code,
    }
    if status == 424:
        return ServerError(f"424 from ai21: {message}", **details)
    if status == 422 and "context window" in message.lower():
        return ContextLength(f"422 from ai21: {message}", **details)
    return classify_error("ai21", status, body, headers)
