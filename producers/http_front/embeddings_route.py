"""``POST /v1/embeddings`` and ``GET /v1/models`` of ``turnout serve``, in OpenAI's shapes.

Embeddings are jobs like chat completions (routing, breaker, retries, attempt log, cost): the
body is submitted and waited for, up to TURNOUT_SERVE_TIMEOUT. ``input`` is a text or a list of
texts; token arrays (which OpenAI also takes) are refused with a clear 400, since turnout's
targets do not share a tokenizer. The openai SDK asks for ``encoding_format: base64`` unless
told otherwise and decodes little-endian float32s: the answer is encoded as it asks.

``GET /v1/models`` lists what ``model`` may name (policies, deployments, aliases), so clients
that look before they call (LangChain, chat UIs, ``client.models.list()``) find them.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Annotated, Any

import redis
from fastapi import FastAPI, Path, Request
from fastapi.responses import JSONResponse

from producers.client import Client
from producers.http_front import errors
from producers.http_front.ownership import caller_of_request
from producers.openai_embeddings import EmbeddingsBody, embeddings_answer
from producers.openai_format import failed_job_body, route_of
from routing.errors import JobTimeout, RedisUnavailable
from routing.models import JobState


def model_list(client: Client, created: int) -> dict[str, Any]:
    """OpenAI's model list: policies and aliases are turnout's, a deployment its provider's."""
    config = client.config
    entries = [(name, "turnout") for name in config.policies]
    entries += [(d.id, d.provider) for d in config.deployments.values()]
    entries += [(name, "turnout") for name in config.aliases]
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": created, "owned_by": owner}
            for name, owner in entries
        ],
    }


PATH = "/v1/embeddings"


def examples(model: str) -> dict[str, Any]:
    """The docs page's example body for ``POST /v1/embeddings``."""
    value = {"model": model, "input": ["The first text", "A second one"]}
    return {"two_texts": {"summary": "Two texts", "value": value}}


def install(
    app: FastAPI,
    client: Client,
    *,
    timeout_s: float,
    dependencies: list[Any],
    errors_for: Callable[..., dict[int | str, dict[str, Any]]],
    auth_errors: tuple[int, ...],
) -> None:
    """Add the routes; ``errors_for(*statuses)`` documents error answers as the app's others."""
    created = int(time.time())

    @app.post(
        PATH,
        tags=["embeddings"],
        summary="Create embeddings (as a job, waited for)",
        dependencies=dependencies,
        response_model=None,
        responses={
            200: {"description": "The job succeeded: OpenAI's list of embeddings"},
            **errors_for(400, *auth_errors, 404, 413, 429, 500, 502, 503, 504),
        },
    )
    async def create_embeddings(request: Request, body: EmbeddingsBody) -> JSONResponse:
        """Submit the texts as an embeddings job and wait for it: OpenAI's list of vectors, or
        the job's error with the status its error class maps to."""
        route = route_of(client.config, body.model)
        caller = caller_of_request(request)
        key = request.headers.get("idempotency-key")
        try:
            handle = await client.asubmit_embedding(
                body.texts(),
                policy=route.policy,
                targets=list(route.targets) or None,
                owner=caller,
                dimensions=body.dimensions,
                input_type=body.input_type,
                user=body.user,
                idempotency_key=_scoped_key(key, caller or "", body),
            )
        except RedisUnavailable as exc:
            if exc.job_id is None:
                raise
            raise errors.job_unreadable(exc.job_id, keyed=key is not None) from None
        try:
            result = await handle.wait(timeout_s)
        except JobTimeout as exc:
            raise errors.job_pending(
                handle.job_id, timeout_s, keyed=key is not None, waiting=exc.waiting
            ) from None
        except (redis.RedisError, RedisUnavailable):
            raise errors.job_unreadable(handle.job_id, keyed=key is not None) from None
        if result.state is JobState.FAILED:
            status, answer = failed_job_body(result)
            return JSONResponse(answer, status_code=status, headers={errors.SHOULD_RETRY: "false"})
        return JSONResponse(embeddings_answer(result, body.encoding_format))

    @app.get(
        "/v1/models",
        tags=["models"],
        summary="What `model` may name: policies, deployments and aliases",
        dependencies=dependencies,
        response_model=None,
        responses={200: {"description": "OpenAI's model list"}, **errors_for(*auth_errors, 500)},
    )
    async def list_models() -> JSONResponse:
        return JSONResponse(model_list(client, created))

    @app.get(
        "/v1/models/{model_id:path}",
        tags=["models"],
        summary="One name `model` may take",
        dependencies=dependencies,
        response_model=None,
        responses={
            200: {"description": "OpenAI's model object"},
            **errors_for(400, *auth_errors, 404, 500),
        },
    )
    async def retrieve_model(model_id: Annotated[str, Path(max_length=200)]) -> JSONResponse:
        for entry in model_list(client, created)["data"]:
            if entry["id"] == model_id:
                return JSONResponse(entry)
        route_of(client.config, model_id)  # raises UnknownModel: OpenAI's 404
        raise AssertionError("unreachable")


def _scoped_key(header: str | None, caller: str, body: EmbeddingsBody) -> str | None:
    """As the chat route's: scoped to the caller and the body."""
    if header is None:
        return None
    material = "\0".join(("http-embed", caller, header, body.model_dump_json()))
    return "http-" + hashlib.sha256(material.encode()).hexdigest()
