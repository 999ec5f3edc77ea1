"""Every answer of ``turnout serve`` that is not a success: OpenAI's error shape, right status.

OpenAI's SDKs read ``{"error": {"message", "type", "param", "code"}}`` and the status into
their exceptions (400 BadRequestError, 401 AuthenticationError, 404 NotFoundError, ...), so a
caller's existing error handling keeps working. Nothing here answers with a traceback, a Redis
address or a token: what went wrong inside is logged, the caller gets what it can act on.

=======  =====================  ======================  ===========================================
status   type                   code                    when
=======  =====================  ======================  ===========================================
400      invalid_request_error  invalid_json            the body is not JSON
400      invalid_request_error  invalid_value           a field is wrong (``param`` names it)
400      invalid_request_error  invalid_request         the producer refused it (``stream: true``,
                                                        a deadline the stack cannot honour, ...)
401      invalid_request_error  invalid_api_key         no bearer token, or not one of ours
404      invalid_request_error  model_not_found         ``model`` names no policy, deployment, alias
404      invalid_request_error  job_not_found           no such job (never submitted, or expired)
404      invalid_request_error  unknown_url             no such path
405      invalid_request_error  method_not_allowed      the path takes other methods (``Allow``)
421      invalid_request_error  host_not_allowed        ``Host`` is not a name this server answers
                                                        (TURNOUT_SERVE_ALLOWED_HOSTS)
413      invalid_request_error  request_too_large       the body is over TURNOUT_SERVE_MAX_BODY
500      server_error           internal_error          a bug; the log has the traceback
503      service_unavailable    queue_unavailable       Redis does not answer (nothing submitted)
                                                        for TURNOUT_REDIS_PATIENCE_S
503      service_unavailable    job_unreadable          Redis stopped answering after the submit
504      timeout_error          job_pending             the job outlived TURNOUT_SERVE_TIMEOUT
=======  =====================  ======================  ===========================================

A job that ran and failed is answered by ``openai_format.failed_job_body`` (its error class
decides: 400, 429, 502, 503, 504 or 500), with ``x-should-retry: false``: OpenAI's SDKs would
otherwise retry its 429 or 5xx, running the whole policy turnout has just run out. A 504
``job_pending`` leaves the job running; it says ``x-should-retry: true`` only to a request
with an Idempotency-Key, whose retry waits for the same job rather than starting another.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from producers.openai_format import (
    ChatCompletionRequest,
    ErrorType,
    UnknownModel,
    error_body,
    field_path,
)
from routing.errors import InvalidRequest, JobNotFound, RedisUnavailable, SubmitError
from routing.models import Waiting

log = logging.getLogger("turnout.serve")

#: A message naming more problems than this is cut short ("and N more").
MAX_PROBLEMS = 20
#: OpenAI's SDKs obey this header over their own rule (which retries 408, 409, 429 and 5xx).
SHOULD_RETRY = "x-should-retry"
#: ``Retry-After`` of a 503 for Redis away, once the server has ridden it out for
#: TURNOUT_REDIS_PATIENCE_S: the client's backoff cap (a Redis restart takes seconds). OpenAI's
#: SDKs wait this long before their own retry.
REDIS_RETRY_AFTER_S = 5
#: The fields a chat completion request may carry (for "unknown field" messages).
REQUEST_FIELDS = tuple(ChatCompletionRequest.model_fields)


class ApiError(Exception):
    """An answer in OpenAI's error shape; raised by handlers, sent by ``install``'s handler."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str,
        type_: ErrorType = "invalid_request_error",
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
        turnout: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.type = type_
        self.param = param
        self.headers = dict(headers or {})
        self.turnout = dict(turnout) if turnout is not None else None

    def body(self) -> dict[str, Any]:
        body = error_body(self.message, self.type, code=self.code, param=self.param)
        if self.turnout is not None:
            body["turnout"] = self.turnout
        return body

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


# --- the errors, by what happened ---------------------------------------------------------------


def unauthorized(*, token_sent: bool) -> ApiError:
    """OpenAI's 401. The token is never repeated back, not even masked."""
    how = (
        "the bearer token is not one this server accepts"
        if token_sent
        else "no bearer token was sent (header 'Authorization: Bearer <token>')"
    )
    return ApiError(
        401,
        f"Incorrect API key provided: {how}. Ask this server's operator for a token from "
        "its TURNOUT_API_TOKENS.",
        code="invalid_api_key",
        headers={"WWW-Authenticate": "Bearer"},
    )


def host_not_allowed() -> ApiError:
    """The DNS-rebinding guard's 421. The host sent is not repeated: it is the caller's text,
    and the operator knows which name they used."""
    return ApiError(
        421,
        "This server does not answer for the host named in the request's Host header. Its "
        "operator can add the name to TURNOUT_SERVE_ALLOWED_HOSTS (comma-separated; loopback "
        "names and the --host address are always allowed).",
        code="host_not_allowed",
        headers={"Connection": "close"},
    )


def body_too_large(limit: int, declared: int | None = None) -> ApiError:
    size = f"{declared} bytes" if declared is not None else f"over {limit} bytes"
    return ApiError(
        413,
        f"The request body is too large ({size}); this server reads at most {limit} bytes "
        "(TURNOUT_SERVE_MAX_BODY).",
        code="request_too_large",
        # The rest of the body is never read: the connection cannot be reused.
        headers={"Connection": "close"},
    )


def unknown_model(exc: UnknownModel) -> ApiError:
    return ApiError(404, str(exc), code="model_not_found", param="model")


def job_not_found(job_id: str) -> ApiError:
    return ApiError(
        404,
        f"No job '{job_id}': it was never submitted here, or it expired (TURNOUT_JOB_TTL).",
        code="job_not_found",
    )


def job_pending(
    job_id: str, timeout_s: float, *, keyed: bool, waiting: Waiting | None = None
) -> ApiError:
    """The wait ran out; the job runs on, or waits (``waiting``) for routes that every one
    refuses it for now: the message and ``turnout.waiting`` say which, why and until when.
    OpenAI's SDKs retry a 504 unless ``x-should-retry`` says no: a retry with the same
    Idempotency-Key (``keyed``) waits for this job again, one without would start a second job,
    so only the first is invited."""
    url = job_url(job_id)
    hint = (
        "a retry with the same Idempotency-Key waits for it again"
        if keyed
        else "send an Idempotency-Key to be able to wait for it again by retrying"
    )
    doing = (
        f"is queued, waiting for {waiting.describe()}"
        if waiting is not None
        else "is still running"
    )
    extra: dict[str, object] = {"job_id": job_id, "url": url}
    if waiting is not None:
        extra["waiting"] = waiting.model_dump(mode="json")
    return ApiError(
        504,
        f"Job {job_id} did not finish within {timeout_s:g}s and {doing}; "
        f"GET {url} for its result ({hint}).",
        code="job_pending",
        type_="timeout_error",
        headers={SHOULD_RETRY: "true" if keyed else "false"},
        turnout=extra,
    )


def queue_unavailable() -> ApiError:
    return ApiError(
        503,
        "The job queue (Redis) does not answer; nothing was lost or started. Try again shortly.",
        code="queue_unavailable",
        type_="service_unavailable",
        headers={"Retry-After": str(REDIS_RETRY_AFTER_S)},
    )


def job_unreadable(job_id: str, *, keyed: bool) -> ApiError:
    """The job was submitted (stored, at least), then Redis stopped answering. Not "nothing
    started": the job runs on, so an SDK's automatic retry without an Idempotency-Key would run
    it twice."""
    url = job_url(job_id)
    return ApiError(
        503,
        f"Job {job_id} was submitted and runs on, but the job queue (Redis) stopped answering "
        f"after the submit; GET {url} for its result.",
        code="job_unreadable",
        type_="service_unavailable",
        headers={
            SHOULD_RETRY: "true" if keyed else "false",
            "Retry-After": str(REDIS_RETRY_AFTER_S),
        },
        turnout={"job_id": job_id, "url": url},
    )


def internal_error() -> ApiError:
    return ApiError(
        500,
        "The server failed to answer this request (a bug, logged on the server). A job it "
        "submitted, if any, still runs.",
        code="internal_error",
        type_="server_error",
        # A retry could submit the job a second time.
        headers={SHOULD_RETRY: "false"},
    )


def job_url(job_id: str) -> str:
    return f"/v1/jobs/{job_id}"


# --- pure mappings ------------------------------------------------------------------------------


def validation_failure(errors: Sequence[Mapping[str, Any]]) -> ApiError:
    """FastAPI's validation errors (its 422) as OpenAI's 400: ``param`` is the first field at
    fault, the message names every problem (``messages.0.role: ...; max_tokens: ...``)."""
    for error in errors:
        if error.get("type") == "json_invalid":
            loc = error.get("loc", ())
            at = f" at character {loc[1]}" if len(loc) > 1 else ""
            why = (error.get("ctx") or {}).get("error", "invalid JSON")
            return ApiError(
                400,
                f"We could not parse the JSON body of your request: {why}{at}.",
                code="invalid_json",
            )
    problems: list[str] = []
    params: list[str] = []
    for error in errors:
        path = field_path(error.get("loc", ()))
        problem = f"{path or 'body'}: {_explain(error, path)}"
        if problem not in problems:
            problems.append(problem)
        if path:
            params.append(path)
    if len(problems) > MAX_PROBLEMS:
        problems[MAX_PROBLEMS:] = [f"and {len(problems) - MAX_PROBLEMS} more problems"]
    return ApiError(
        400,
        "; ".join(problems) or "invalid request",
        code="invalid_value",
        param=params[0] if params else None,
    )


def _explain(error: Mapping[str, Any], path: str) -> str:
    kind = error.get("type")
    if kind == "extra_forbidden":
        if "." not in path:
            return f"unknown field (a request may carry {', '.join(REQUEST_FIELDS)})"
        return "unknown field"
    if kind in ("model_attributes_type", "dict_type") and not path:
        return "the body must be a JSON object, sent with Content-Type: application/json"
    return str(error.get("msg", "invalid"))


def http_failure(status: int, method: str, path: str, headers: Mapping[str, str]) -> ApiError:
    """Starlette's own answers (no route, wrong method) in OpenAI's shape."""
    if status == 404:
        return ApiError(404, f"Invalid URL ({method} {path})", code="unknown_url")
    if status == 405:
        allowed = headers.get("Allow") or headers.get("allow") or ""
        return ApiError(
            405,
            f"Method {method} is not allowed for {path}; it takes {allowed or 'other methods'}.",
            code="method_not_allowed",
            headers=headers,
        )
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return ApiError(
        status,
        f"{phrase} ({method} {path})",
        code=phrase.lower().replace(" ", "_").replace("-", "_"),
        type_="invalid_request_error" if status < 500 else "server_error",
        headers=headers,
    )


# --- wiring -------------------------------------------------------------------------------------


def install(app: FastAPI) -> None:
    """Route every exception to an answer in OpenAI's shape."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_failure(exc.errors()).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        failure = http_failure(
            exc.status_code, request.method, request.url.path, dict(exc.headers or {})
        )
        return failure.response()

    @app.exception_handler(UnknownModel)
    async def _unknown_model(_: Request, exc: UnknownModel) -> JSONResponse:
        return unknown_model(exc).response()

    @app.exception_handler(JobNotFound)
    async def _no_such_job(_: Request, exc: JobNotFound) -> JSONResponse:
        return job_not_found(exc.job_id).response()

    @app.exception_handler(InvalidRequest)
    async def _refused(_: Request, exc: InvalidRequest) -> JSONResponse:
        message = str(exc)
        return ApiError(400, message, code="invalid_request", param=exc.param).response()

    async def _queue_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning("%s %s: the queue does not answer: %s", request.method, request.url.path, exc)
        if isinstance(exc, RedisUnavailable) and exc.job_id is not None:
            # A submit that stored its job, then lost Redis: the job may run.
            return job_unreadable(exc.job_id, keyed=False).response()
        return queue_unavailable().response()

    app.add_exception_handler(SubmitError, _queue_down)
    app.add_exception_handler(redis.RedisError, _queue_down)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, __: Exception) -> JSONResponse:
        # Starlette re-raises after answering, so the server's log has the traceback.
        return internal_error().response()
