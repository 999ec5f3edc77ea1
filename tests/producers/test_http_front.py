"""``turnout serve``'s parts without a worker: tokens, the error mapping, the size limit, the
app's refusals and OpenAPI document, and Redis down. (tests/integration/test_serve.py runs it
for real.)"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from ops.simulator.server import free_port
from producers.client import Client, as_request
from producers.http_front import errors
from producers.http_front.app import create_app, job_answer, job_view
from producers.http_front.auth import BearerTokens, bearer_credentials, parse_tokens
from producers.http_front.body_limit import BodySizeLimit
from producers.http_front.schemas import ChatCompletion, ErrorBody, JobView
from producers.openai_format import ChatCompletionRequest
from producers.settings import ProducerSettings
from routing.config import parse_config
from routing.errors import ConfigError, ErrorClass, InvalidRequest
from routing.models import Attempt, CompletionResult, JobError, JobState, Usage
from routing.policies import resolve_policy

CONFIG = parse_config(
    {
        "deployments": [
            {"id": "openai-main", "provider": "openai", "model": "gpt-4o-mini"},
            {"id": "groq-backup", "provider": "groq", "model": "llama-3.1-8b-instant"},
        ],
        "aliases": {"cheap": ["groq-backup"]},
        "policies": {"default": {"targets": ["openai-main", "groq-backup"]}},
    },
    source="test.yaml",
)


def settings(**env: str) -> ProducerSettings:
    # TestClient names its host "testserver": allowed here, as an operator would list a name.
    return ProducerSettings.model_validate(
        {
            "TURNOUT_NAMESPACE": f"t-{secrets.token_hex(5)}",
            "TURNOUT_SERVE_ALLOWED_HOSTS": "testserver",
            **env,
        }
    )


def app_for(redis_url: str, **env: str) -> tuple[Any, ProducerSettings]:
    configured = settings(REDIS_URL=redis_url, **env)
    return create_app(Client(settings=configured, config=CONFIG), configured), configured


# --- tokens ---------------------------------------------------------------------------------------


def test_tokens_are_comma_separated_and_checked_against_every_one():
    first, second = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    tokens = BearerTokens(parse_tokens(f" {first} ,{second},, "))
    assert len(tokens) == 2
    assert tokens.accepts(first.encode())
    assert tokens.accepts(second.encode())
    for wrong in (b"", first[:-1].encode(), (first + "x").encode(), first.upper().encode()):
        assert not tokens.accepts(wrong)
    assert first not in repr(tokens)


def test_the_example_token_and_weak_tokens_are_refused_saying_how_to_make_one():
    good = secrets.token_urlsafe(32)
    with pytest.raises(ConfigError) as refused:
        parse_tokens(f"{good},change-me-to-a-long-random-token,{'x' * 20},password123456789")
    message = str(refused.value)
    assert "token 2 of 4 is the placeholder shipped in .env.example" in message
    assert "token 3 of 4 has only 1 distinct characters" in message
    assert "token 4 of 4 is a common word" in message
    assert "secrets.token_urlsafe(32)" in message
    assert "change-me" not in message
    assert "password1" not in message


def test_bad_tokens_are_refused_by_position_never_by_value():
    short = "abc123"
    good = secrets.token_urlsafe(32)
    with pytest.raises(ConfigError) as refused:
        parse_tokens(f"{good},{short},{good[:10]} {good[10:]}")
    message = str(refused.value)
    assert "token 2 of 3 has 6 characters" in message
    assert "token 3 of 3 has spaces" in message
    assert short not in message
    assert good[:10] not in message


def test_blank_tokens_mean_unset():
    assert BearerTokens.from_settings(settings(TURNOUT_API_TOKENS="  ")) is None
    assert BearerTokens.from_settings(settings(TURNOUT_API_TOKENS=" , ")) is None


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (None, None),
        (b"", None),
        (b"Bearer", None),
        (b"Bearer   ", None),
        (b"Basic abc", None),
        (b"Bearer abc", b"abc"),
        (b"bearer  abc ", b"abc"),
        (b"BEARER abc", b"abc"),
    ],
)
def test_the_bearer_token_of_an_authorization_header(header, token):
    assert bearer_credentials(header) == token


# --- the error mapping ----------------------------------------------------------------------------


def test_validation_errors_name_every_field_and_param_the_first():
    failure = errors.validation_failure(
        [
            {"type": "literal_error", "loc": ("body", "messages", 0, "role"), "msg": "bad role"},
            {
                "type": "string_too_short",
                "loc": ("body", "messages", 0, "content", "str"),
                "msg": "short",
            },
            {
                "type": "list_type",
                "loc": ("body", "messages", 0, "content", "list[TextPart]"),
                "msg": "not a list",
            },
            {"type": "extra_forbidden", "loc": ("body", "tools"), "msg": "Extra inputs"},
            {
                "type": "string_pattern_mismatch",
                "loc": ("header", "Idempotency-Key"),
                "msg": "pattern",
            },
        ]
    )
    assert failure.status == 400
    assert failure.code == "invalid_value"
    assert failure.param == "messages.0.role"
    assert failure.message.split("; ") == [
        "messages.0.role: bad role",
        "messages.0.content: short",
        "messages.0.content: not a list",
        "tools: unknown field (a request may carry model, messages, max_tokens, "
        "max_completion_tokens, temperature, top_p, stop, n, stream, metadata, user, tools, "
        "tool_choice, parallel_tool_calls, response_format, seed, presence_penalty, "
        "frequency_penalty, logprobs, top_logprobs, reasoning_effort)",
        "Idempotency-Key: pattern",
    ]
    assert failure.body()["error"]["type"] == "invalid_request_error"


def test_a_message_naming_many_problems_is_cut_short():
    many = [{"type": "x", "loc": ("body", "messages", i, "role"), "msg": "bad"} for i in range(50)]
    message = errors.validation_failure(many).message
    assert message.count("; ") == errors.MAX_PROBLEMS
    assert message.endswith("and 30 more problems")


def test_malformed_json_and_a_body_that_is_no_object():
    broken = errors.validation_failure(
        [
            {
                "type": "json_invalid",
                "loc": ("body", 11),
                "msg": "JSON decode error",
                "ctx": {"error": "Expecting value"},
            }
        ]
    )
    assert (broken.status, broken.code, broken.param) == (400, "invalid_json", None)
    assert broken.message == (
        "We could not parse the JSON body of your request: Expecting value at character 11."
    )
    raw = errors.validation_failure(
        [{"type": "model_attributes_type", "loc": ("body",), "msg": "x"}]
    )
    assert "Content-Type: application/json" in raw.message


def test_the_param_of_a_producers_refusal():
    """The field a refusal names travels with it (InvalidRequest.param), never parsed back out
    of its message."""

    def refusal(**fields: Any) -> InvalidRequest:
        body = {"model": "default", "messages": [{"role": "user", "content": "Hi"}], **fields}
        with pytest.raises(InvalidRequest) as caught:
            ChatCompletionRequest.model_validate(body).to_completion_request()
        return caught.value

    assert refusal(stream=True).param == "stream"
    system_only = refusal(messages=[{"role": "system", "content": "only"}])
    assert system_only.param is None, "about the request as a whole"
    with pytest.raises(InvalidRequest) as caught:
        as_request({"messages": [{"role": "user", "content": " "}]})
    assert caught.value.param == "messages.0.content"
    with pytest.raises(InvalidRequest) as caught:
        resolve_policy(CONFIG, "nope")
    assert caught.value.param is None


def test_starlettes_own_answers_keep_their_status_and_headers():
    missing = errors.http_failure(404, "GET", "/v1/x", {})
    assert (missing.status, missing.code, missing.message) == (
        404,
        "unknown_url",
        "Invalid URL (GET /v1/x)",
    )
    wrong = errors.http_failure(405, "GET", "/v1/jobs", {"allow": "POST"})
    assert (wrong.status, wrong.code, wrong.headers) == (
        405,
        "method_not_allowed",
        {"allow": "POST"},
    )
    other = errors.http_failure(400, "POST", "/v1/jobs", {})
    assert (other.code, other.type) == ("bad_request", "invalid_request_error")


# --- the bodies match the document -------------------------------------------------------------


def result(state: JobState, **fields: Any) -> CompletionResult:
    attempt = Attempt(
        deployment="openai-main",
        provider="openai",
        model="gpt-4o-mini",
        outcome="ok",
        status_code=200,
        latency_ms=12.5,
        started_at=time.time(),
    )
    return CompletionResult(
        job_id="j-1", state=state, created_at=time.time(), attempts=[attempt], **fields
    )


def test_every_body_is_what_the_openapi_document_says():
    done = result(
        JobState.SUCCEEDED,
        text="Hi",
        finish_reason="error",
        deployment="openai-main",
        provider="openai",
        model="gpt-4o-mini",
        runs=1,
        usage=Usage(prompt_tokens=3, completion_tokens=1, total_tokens=4),
    )
    status, body = job_answer(done)
    assert status == 200
    ChatCompletion.model_validate(body)
    failed = result(
        JobState.FAILED, error=JobError(error_class=ErrorClass.ALL_UNAVAILABLE, message="dark")
    )
    status, body = job_answer(failed)
    assert status == 503
    ErrorBody.model_validate(body)
    for job in (done, failed, result(JobState.QUEUED), result(JobState.RUNNING)):
        view = JobView.model_validate(job_view(job))
        assert view.url == "/v1/jobs/j-1"
        assert (view.response is None) == (not job.state.is_terminal)
    ErrorBody.model_validate(errors.job_pending("j-1", 60, keyed=False).body())
    with pytest.raises(ValueError, match="not finished"):
        job_answer(result(JobState.RUNNING))


# --- the size limit -----------------------------------------------------------------------------


def run_limited(
    max_bytes: int, chunks: list[bytes], headers: list[tuple[bytes, bytes]]
) -> tuple[int, bytes, int]:
    """The middleware in front of an app that answers the size of the body it got; returns the
    status, the body, and how many messages the middleware received."""
    received = 0
    sent: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        length = str(len(message["body"])).encode()
        assert not message["more_body"]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": length})

    async def receive() -> Message:
        nonlocal received
        received += 1
        chunk = chunks[received - 1]
        return {"type": "http.request", "body": chunk, "more_body": received < len(chunks)}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    asyncio.run(BodySizeLimit(app, max_bytes=max_bytes)(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], body, received


def test_a_declared_length_over_the_limit_is_refused_unread():
    status, body, received = run_limited(100, [b"x" * 10], [(b"content-length", b"101")])
    assert status == 413
    assert b"request_too_large" in body
    assert received == 0, "not a byte was read"


def test_streamed_bytes_over_the_limit_are_refused_as_they_come():
    chunks = [b"x" * 40, b"x" * 40, b"x" * 40, b"never read"]
    status, _, received = run_limited(100, chunks, [(b"transfer-encoding", b"chunked")])
    assert (status, received) == (413, 3)
    # A lying Content-Length is no way around it.
    status, _, _ = run_limited(100, chunks[:3], [(b"content-length", b"10")])
    assert status == 413


def test_a_body_within_the_limit_reaches_the_app_whole():
    status, body, received = run_limited(100, [b"x" * 50, b"y" * 50], [])
    assert (status, body, received) == (200, b"100", 2)


# --- the app ------------------------------------------------------------------------------------


def test_without_tokens_the_app_refuses_unless_told_no_auth(redis_url):
    plain = settings(REDIS_URL=redis_url)
    with (
        Client(settings=plain, config=CONFIG) as client,
        pytest.raises(ConfigError, match="TURNOUT_API_TOKENS is not set"),
    ):
        create_app(client, plain)
    token = secrets.token_urlsafe(32)
    both = settings(REDIS_URL=redis_url, TURNOUT_API_TOKENS=token)
    with (
        Client(settings=both, config=CONFIG) as client,
        pytest.raises(ConfigError, match="--no-auth was given") as refused,
    ):
        create_app(client, both, no_auth=True)
    assert token not in str(refused.value)

    app = create_app(Client(settings=plain, config=CONFIG), plain, no_auth=True)
    with TestClient(app) as http:
        missing = http.get("/v1/jobs/nope")
        assert missing.status_code == 404, "no token needed"
        document = http.get("/openapi.json").json()
    assert "securitySchemes" not in document.get("components", {})
    assert all(
        "401" not in op["responses"] for path in document["paths"].values() for op in path.values()
    )


def test_the_document_declares_every_status_with_the_error_model(redis_url):
    app, _ = app_for(redis_url, TURNOUT_API_TOKENS=secrets.token_urlsafe(32))
    with TestClient(app) as http:
        document = http.get("/openapi.json").json()
        assert http.get("/docs").status_code == 200, "the docs page needs no token"
    paths = document["paths"]
    declared = {
        (method.upper(), path): set(operation["responses"])
        for path, operations in paths.items()
        for method, operation in operations.items()
    }
    assert declared == {
        ("POST", "/v1/chat/completions"): {
            "200",
            "400",
            "401",
            "404",
            "413",
            "429",
            "500",
            "502",
            "503",
            "504",
        },
        ("POST", "/v1/jobs"): {"202", "400", "401", "404", "413", "500", "503"},
        ("GET", "/v1/jobs/{job_id}"): {"200", "400", "401", "404", "500", "503"},
        ("GET", "/healthz"): {"200", "500", "503"},
        ("POST", "/v1/embeddings"): {
            "200",
            "400",
            "401",
            "404",
            "413",
            "429",
            "500",
            "502",
            "503",
            "504",
        },
        ("GET", "/v1/models"): {"200", "401", "500"},
        ("GET", "/v1/models/{model_id}"): {"200", "400", "401", "404", "500"},
    }
    for path, operations in paths.items():
        for operation in operations.values():
            for status, response in operation["responses"].items():
                schema = response["content"]["application/json"]["schema"]
                if status >= "400":
                    assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (path, status)
            assert ("security" in operation) == (path != "/healthz")
    chat = paths["/v1/chat/completions"]["post"]
    assert chat["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ChatCompletionRequest"
    }
    example = chat["requestBody"]["content"]["application/json"]["examples"]["hello"]["value"]
    assert example["model"] == "default", "an example the docs page can send as it is"
    assert paths["/v1/jobs"]["post"]["responses"]["202"]["headers"]["Location"]
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_a_request_naming_another_host_is_421_in_openai_shape_before_its_token_is_read(
    redis_url,
):
    token = secrets.token_urlsafe(32)
    app, _ = app_for(redis_url, TURNOUT_API_TOKENS=token, TURNOUT_SERVE_ALLOWED_HOSTS="api")
    auth = {"Authorization": f"Bearer {token}"}
    request = {"model": "default", "messages": [{"role": "user", "content": "hi"}]}
    with TestClient(app, base_url="http://rebound.example:8000") as http:
        for method, path in (("GET", "/healthz"), ("POST", "/v1/jobs"), ("GET", "/docs")):
            refused = http.request(method, path, json=request, headers=auth)
            assert refused.status_code == 421, (method, path, refused.text)
            error = refused.json()["error"]
            assert error["code"] == "host_not_allowed"
            assert error["type"] == "invalid_request_error"
            assert "TURNOUT_SERVE_ALLOWED_HOSTS" in error["message"]
            assert "rebound" not in refused.text, "the caller's text is not echoed"
        for host in ("api:8000", "localhost:8000", "127.0.0.1", "[::1]:8000", "API."):
            assert http.get("/v1/jobs/nope", headers={**auth, "Host": host}).status_code == 404
        assert http.get("/healthz", headers={"Host": "testserver"}).status_code == 421, (
            "the list is the setting's, not the helper's"
        )


def test_redis_down_is_503_on_submit_and_health(redis_url):
    token = secrets.token_urlsafe(32)
    app, _ = app_for(
        f"redis://127.0.0.1:{free_port()}/0",
        TURNOUT_API_TOKENS=token,
        TURNOUT_REDIS_PATIENCE_S="0.3",
    )
    request = {"model": "default", "messages": [{"role": "user", "content": "hi"}]}
    with TestClient(app, raise_server_exceptions=False) as http:
        assert http.get("/healthz").status_code == 503
        for path in ("/v1/chat/completions", "/v1/jobs"):
            response = http.post(path, json=request, headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "queue_unavailable"
            assert response.headers["retry-after"] == "5"
            assert "127.0.0.1" not in response.text, "no internals in the answer"
        read = http.get(f"/v1/jobs/{uuid.uuid4()}", headers={"Authorization": f"Bearer {token}"})
        assert read.status_code == 503


def test_the_docs_page_loads_swagger_ui_from_turnout_not_a_cdn(redis_url):
    app, _ = app_for(redis_url, TURNOUT_API_TOKENS=secrets.token_urlsafe(32))
    with TestClient(app) as http:
        page = http.get("/docs")  # no token, as before
        assert page.status_code == 200
        urls = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", page.text)
        assert urls, page.text
        assert all(url.startswith("/") and not url.startswith("//") for url in urls), urls
        assert "http://" not in page.text
        assert "https://" not in page.text
        for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"):
            assert f"/docs-assets/{asset}" in urls
            answer = http.get(f"/docs-assets/{asset}")  # no token either
            assert answer.status_code == 200, asset
            assert len(answer.content) > 500, asset
        assert "SwaggerUIBundle" in http.get("/docs-assets/swagger-ui-bundle.js").text
        assert http.get("/docs/oauth2-redirect").status_code == 200
        assert http.get("/v1/jobs/nope").status_code == 401, "the API still needs a token"
