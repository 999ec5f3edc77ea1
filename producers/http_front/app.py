"""The ASGI app of ``turnout serve``: OpenAI's chat completions over turnout's job queue.

    app = create_app(Client(settings=settings), settings)

``POST /v1/chat/completions`` submits a job and waits for it (up to TURNOUT_SERVE_TIMEOUT);
``POST /v1/jobs`` submits and answers 202 at once; ``GET /v1/jobs/{id}`` reads a job (a caller's
own, or any for an admin token: producers.http_front.ownership); ``GET /healthz`` says whether
Redis answers. The app owns the client it is given and closes it
when it stops.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.metadata
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import redis
from fastapi import FastAPI, Header, Path, Request, Security
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer

from producers.client import AsyncJobHandle, Client
from producers.http_front import docs_page, embeddings_route, errors
from producers.http_front.access_log import AccessLog
from producers.http_front.auth import BearerAuth, BearerTokens
from producers.http_front.body_limit import BodySizeLimit
from producers.http_front.host_check import AllowedHosts
from producers.http_front.ownership import caller_of_request, readable_job
from producers.http_front.schemas import ChatCompletion, ErrorBody, Health, JobView
from producers.openai_embeddings import embeddings_answer
from producers.openai_format import (
    ChatCompletionRequest,
    chat_completion,
    failed_job_body,
    route_of,
)
from producers.settings import ProducerSettings
from routing.errors import ConfigError, JobTimeout, RedisUnavailable
from routing.host_allowlist import HostAllowList
from routing.models import CompletionResult, JobState

log = logging.getLogger("turnout.serve")

#: What a job id looks like (producers.client makes uuid4s).
JOB_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
#: A health check gets this long for Redis's PING.
HEALTH_TIMEOUT_S = 3.0

DESCRIPTION = """\
OpenAI's chat completions API, served by turnout's durable job queue: each request is a job
that workers run with retries and fleet-wide failover along the routing policy its `model`
names (a policy, a deployment or an alias of the server's config). Point an OpenAI SDK at
`/v1` with a token from the server's `TURNOUT_API_TOKENS`.

Every error is in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`.
"""

_ERRORS = {
    400: "The request is wrong (`param` names the field), or the job failed on it",
    401: "No bearer token, or not one this server accepts",
    404: "`model` names no policy, deployment or alias; or no such job (none of yours: a job "
    "is shown to the token that submitted it, and to admin tokens)",
    413: "The body is larger than TURNOUT_SERVE_MAX_BODY",
    429: "The job failed: every provider rate-limited it",
    500: "A bug in the server, or a job lost its worker too often",
    502: "The job failed on the providers (an error of theirs, or of their keys)",
    503: "Redis does not answer (for TURNOUT_REDIS_PATIENCE_S; `Retry-After` says when to try "
    "again), or every target of the job was unavailable",
    504: "The job ran past its deadline, or is still running (the body names it)",
}


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="The same key names the same job: a retried request waits for the job the "
        "first one started instead of starting another.",
    ),
]
JobId = Annotated[str, Path(min_length=1, max_length=200)]


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorBody, "description": _ERRORS[status]} for status in statuses}


def create_app(
    client: Client,
    settings: ProducerSettings,
    *,
    no_auth: bool = False,
    bind_host: str = "127.0.0.1",
) -> FastAPI:
    """The app, with bearer auth from ``settings.api_tokens``: ConfigError when none are set
    (unless ``no_auth``) or when some are but ``no_auth`` asks for none. It answers the
    ``Host`` names of loopback, ``bind_host`` and TURNOUT_SERVE_ALLOWED_HOSTS only."""
    tokens = BearerTokens.from_settings(settings)
    if tokens is None and not no_auth:
        raise ConfigError(
            "TURNOUT_API_TOKENS is not set: anyone who reaches the port could spend the "
            "providers' keys; fix: set it to one or more tokens, comma-separated (make one "
            "with: python -c 'import secrets; print(secrets.token_urlsafe(32))'), or pass "
            "--no-auth to serve without authentication"
        )
    if tokens is not None and no_auth:
        raise ConfigError(
            "--no-auth was given and TURNOUT_API_TOKENS or TURNOUT_ADMIN_TOKENS is set; fix: "
            "drop one of them"
        )
    timeout_s = settings.serve_timeout_s

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if tokens is None:
            log.warning(
                "authentication is OFF (--no-auth): anyone who reaches this port can "
                "submit jobs on the providers' keys"
            )
        else:
            log.info(
                "accepting %d bearer token(s), %d of them from TURNOUT_ADMIN_TOKENS",
                len(tokens),
                len(tokens.admins),
            )
        log.info(
            "models: %s; waits up to %gs; bodies up to %d bytes",
            ", ".join(models(client)),
            timeout_s,
            settings.serve_max_body_bytes,
        )
        try:
            yield
        finally:
            await client.aclose()
            client.close()

    app = FastAPI(
        title="turnout",
        description=DESCRIPTION,
        version=_version(),
        lifespan=lifespan,
        redirect_slashes=False,  # an API answers the path it was asked, never a redirect
        redoc_url=None,
        docs_url=None,  # docs_page serves /docs with local assets, not a CDN's
    )
    bearer = HTTPBearer(auto_error=False, description="A token from TURNOUT_API_TOKENS")
    # The middleware checks the token before the body is read; this declares it in the
    # OpenAPI document (and the docs page's Authorize button).
    secured = [] if tokens is None else [Security(bearer)]
    auth_errors = () if tokens is None else (401,)

    async def submit(
        request: Request, body: ChatCompletionRequest, idempotency_key: str | None
    ) -> AsyncJobHandle:
        route = route_of(client.config, body.model)
        caller = caller_of_request(request)
        completion = body.to_completion_request(scoped_key(idempotency_key, caller or "", body))
        try:
            return await client.asubmit(
                completion, policy=route.policy, targets=list(route.targets) or None, owner=caller
            )
        except RedisUnavailable as exc:
            if exc.job_id is None:
                raise  # nothing stored: 503 queue_unavailable
            log.warning("job %s: stored, then Redis stopped answering: %s", exc.job_id, exc)
            raise errors.job_unreadable(exc.job_id, keyed=idempotency_key is not None) from None

    @app.post(
        "/v1/chat/completions",
        tags=["chat"],
        summary="Create a chat completion (as a job, waited for)",
        dependencies=secured,
        response_model=None,
        responses={
            200: {"model": ChatCompletion, "description": "The job succeeded"},
            **_errors(400, *auth_errors, 404, 413, 429, 500, 502, 503, 504),
        },
    )
    async def chat_completions(
        request: Request, body: ChatCompletionRequest, idempotency_key: IdempotencyKey = None
    ) -> JSONResponse:
        """Submit the request as a job and wait for it, up to TURNOUT_SERVE_TIMEOUT: its
        ``chat.completion``, or its error with the status its error class maps to. A job still
        running then is answered 504 with its id, and keeps running."""
        handle = await submit(request, body, idempotency_key)
        keyed = idempotency_key is not None
        try:
            result = await handle.wait(timeout_s)
        except JobTimeout as exc:
            raise errors.job_pending(
                handle.job_id, timeout_s, keyed=keyed, waiting=exc.waiting
            ) from None
        except (redis.RedisError, RedisUnavailable) as exc:
            log.warning("job %s: Redis stopped answering the wait: %s", handle.job_id, exc)
            raise errors.job_unreadable(handle.job_id, keyed=keyed) from None
        status, answer = job_answer(result)
        if result.state is JobState.FAILED:
            # turnout already retried and failed over as the policy says; an SDK's retry would
            # only run the whole policy again (or, with the same key, read the same failure).
            return JSONResponse(answer, status_code=status, headers={errors.SHOULD_RETRY: "false"})
        return JSONResponse(answer, status_code=status)

    @app.post(
        "/v1/jobs",
        tags=["jobs"],
        summary="Submit a chat completion job without waiting",
        status_code=202,
        dependencies=secured,
        response_model=None,
        responses={
            202: {
                "model": JobView,
                "description": "The job is queued (or, for a known Idempotency-Key, the job "
                "that key names, in whatever state it is)",
                "headers": {
                    "Location": {"description": "The job's URL", "schema": {"type": "string"}}
                },
            },
            **_errors(400, *auth_errors, 404, 413, 500, 503),
        },
    )
    async def submit_job(
        request: Request, body: ChatCompletionRequest, idempotency_key: IdempotencyKey = None
    ) -> JSONResponse:
        """The body of ``POST /v1/chat/completions``; answers at once with the job."""
        handle = await submit(request, body, idempotency_key)
        try:
            view = job_view(await handle.result())
        except (redis.RedisError, RedisUnavailable) as exc:
            log.warning("job %s: Redis stopped answering: %s", handle.job_id, exc)
            raise errors.job_unreadable(handle.job_id, keyed=idempotency_key is not None) from None
        return JSONResponse(view, status_code=202, headers={"Location": view["url"]})

    @app.get(
        "/v1/jobs/{job_id}",
        tags=["jobs"],
        summary="A job: its state, its answer once finished, its attempts",
        dependencies=secured,
        response_model=None,
        responses={
            200: {"model": JobView, "description": "The job"},
            **_errors(400, *auth_errors, 404, 500, 503),
        },
    )
    async def get_job(request: Request, job_id: JobId) -> JSONResponse:
        """The job, to the token that submitted it or an admin token; 404 to any other, as
        for a job that does not exist."""
        if not JOB_ID.fullmatch(job_id):  # never a Redis key of something else
            raise errors.job_not_found(job_id)
        result = await readable_job(client.ajob(job_id), caller_of_request(request), tokens)
        return JSONResponse(job_view(result))

    @app.get(
        "/healthz",
        tags=["ops"],
        summary="Whether the server and its Redis answer (no token needed)",
        response_model=None,
        responses={
            200: {"model": Health, "description": "Redis answers"},
            **_errors(500, 503),
        },
    )
    async def healthz() -> JSONResponse:
        try:
            await asyncio.wait_for(client.aping(), HEALTH_TIMEOUT_S)
        except Exception as exc:
            log.warning("health check: Redis does not answer: %s", type(exc).__name__)
            return errors.queue_unavailable().response()
        return JSONResponse({"status": "ok"})

    embeddings_route.install(
        app,
        client,
        timeout_s=timeout_s,
        dependencies=secured,
        errors_for=_errors,
        auth_errors=auth_errors,
    )
    errors.install(app)
    docs_page.install(app)
    # Added innermost first: AccessLog sees every answer, auth runs before the body is read.
    app.add_middleware(BodySizeLimit, max_bytes=settings.serve_max_body_bytes)
    if tokens is not None:
        public = {"/healthz", app.openapi_url, *docs_page.PUBLIC_PATHS}
        app.add_middleware(BearerAuth, tokens=tokens, public_paths={p for p in public if p})
    hosts = HostAllowList.for_server(bind_host, settings.serve_allowed_hosts)
    app.add_middleware(AllowedHosts, hosts=hosts)
    app.add_middleware(AccessLog)
    _document(app, example_model=models(client)[0])
    return app


def scoped_key(header: str | None, caller: str, body: ChatCompletionRequest) -> str | None:
    """The job's idempotency key for a request's Idempotency-Key: scoped to the caller's token
    (two callers' "1" are two jobs, never one's answer to the other) and to the body (the same
    key with another request is another job, not the old answer)."""
    if header is None:
        return None
    material = "\0".join(("http", caller, header, body.model_dump_json()))
    return "http-" + hashlib.sha256(material.encode()).hexdigest()


def _version() -> str:
    try:
        return importlib.metadata.version("turnout")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
        return "0+unknown"


def models(client: Client) -> list[str]:
    """What ``model`` may name: policies first, then deployments and aliases."""
    config = client.config
    return [*config.policies, *config.deployments, *config.aliases]


def job_answer(result: CompletionResult) -> tuple[int, dict[str, Any]]:
    """A finished job as ``POST /v1/chat/completions`` answers it: status and body."""
    if result.state is JobState.SUCCEEDED and result.embeddings is not None:
        return 200, embeddings_answer(result)
    if result.state is JobState.SUCCEEDED:
        return 200, chat_completion(result)
    if result.state is JobState.FAILED:
        return failed_job_body(result)
    raise ValueError(f"job {result.job_id} has not finished ({result.state})")


def job_view(result: CompletionResult) -> dict[str, Any]:
    """A job as ``GET /v1/jobs/{id}`` shows it (schemas.JobView)."""
    response = None
    if result.state.is_terminal:
        status, body = job_answer(result)
        response = {"status_code": status, "body": body}
    return {
        "id": result.job_id,
        "object": "turnout.job",
        "state": result.state.value,
        "url": errors.job_url(result.job_id),
        "created_at": result.created_at,
        "started_at": result.started_at,
        "finished_at": result.finished_at,
        "runs": result.runs,
        "response": response,
        "attempts": [attempt.model_dump(mode="json") for attempt in result.attempts],
        "waiting": result.waiting.model_dump(mode="json") if result.waiting else None,
    }


def _document(app: FastAPI, *, example_model: str) -> None:
    """The OpenAPI document as FastAPI makes it, with two changes: no 422 (FastAPI documents
    one on every route with parameters; this app answers those 400 in OpenAI's shape), and an
    example request naming a model this server has, which the docs page's "Try it out" sends
    as it is."""
    example = {
        "model": example_model,
        "messages": [{"role": "user", "content": "Say hello"}],
        "max_tokens": 32,
    }

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            for name, path in document.get("paths", {}).items():
                for operation in path.values():
                    operation.get("responses", {}).pop("422", None)
                    content = operation.get("requestBody", {}).get("content", {})
                    for media in content.values():
                        media["examples"] = (
                            embeddings_route.examples(example_model)
                            if name == embeddings_route.PATH
                            else {"hello": {"summary": "A short chat", "value": example}}
                        )
            schemas = document.get("components", {}).get("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
