"""``turnout serve`` run for real: its command in its own process on a loopback port, a real
worker and two simulated providers behind it. The official openai SDK, schemathesis (driven by
the served OpenAPI document) and plain HTTP clients talk to it, and no answer and no line of
its log carries a token or a provider key."""

from __future__ import annotations

import http.client
import json
import secrets
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import httpx2
import openai
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.schemas import OpenApiSchema

from ops.simulator.server import LOOPBACK, free_port
from ops.stack import ChildProcess
from tests.helpers import eventually
from tests.integration.conftest import run_cli

#: Short, so a slow job outlives it within a test.
SERVE_TIMEOUT_S = 2.0
#: Small, so a body over it is cheap to send.
MAX_BODY = 64 * 1024
HELLO = {"model": "default", "messages": [{"role": "user", "content": "Hello there"}]}


@dataclass
class Served:
    """``turnout serve`` in a subprocess. Every answer read through ``call`` is kept (for the
    secrets check), and checked against the served OpenAPI document when its path is there."""

    port: int
    token: str
    other_token: str
    process: ChildProcess
    must_not_leak: list[str]
    answers: list[str] = field(default_factory=list)
    document: OpenApiSchema | None = None
    #: A token of TURNOUT_ADMIN_TOKENS: reads every job.
    admin_token: str = ""

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = httpx.request(method, self.url + path, timeout=15, **kwargs)
        self.keep(response.text)
        if self.document is None:
            self.document = schemathesis.openapi.from_url(f"{self.url}/openapi.json")
        operation = self.document.find_operation_by_path(method, path.partition("?")[0])
        streamed = isinstance(kwargs.get("content"), Iterator)  # the validator reads requests
        if operation is not None and not streamed:
            operation.validate_response(response)  # status, content type and body as documented
        return response

    def keep(self, text: str) -> None:
        self.answers.append(text)

    def log(self) -> str:
        return self.process.log()


def start_serve(
    env: dict[str, str], log_dir: Path, port: int, *extra: str, name: str = "serve"
) -> ChildProcess:
    """``turnout serve``, in its own process."""
    turnout = Path(sys.executable).parent / "turnout"
    argv = [str(turnout), "serve", "--host", LOOPBACK, "--port", str(port), *extra]
    return ChildProcess(name, argv, env=env, log_dir=log_dir, grace_s=15)


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture(scope="module")
def served(stack, tmp_path_factory) -> Iterator[Served]:
    token, other = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    admin = secrets.token_urlsafe(32)
    env = {
        **stack.env,
        "TURNOUT_API_TOKENS": f"{token}, {other}",
        "TURNOUT_ADMIN_TOKENS": admin,
        "TURNOUT_SERVE_TIMEOUT": str(SERVE_TIMEOUT_S),
        "TURNOUT_SERVE_MAX_BODY": str(MAX_BODY),
    }
    port = free_port()
    with start_serve(env, tmp_path_factory.mktemp("serve"), port) as process:
        keys = [stack.primary.key, stack.secondary.key]
        running = Served(port, token, other, process, [token, other, admin, *keys])
        running.admin_token = admin
        process.wait_until(lambda: healthy(running.url), timeout_s=20, what="200 at /healthz")
        yield running


@pytest.fixture
def api(served: Served, live) -> Served:
    """The server, with the simulators reset and every breaker closed."""
    return served


def sdk(served: Served, token: str | None = None, *, max_retries: int = 0) -> openai.OpenAI:
    """The official client, every answer it reads kept for the secrets check."""

    def keep(response: httpx2.Response) -> None:
        response.read()
        served.keep(response.text)

    return openai.OpenAI(
        base_url=f"{served.url}/v1",
        api_key=token or served.token,
        max_retries=max_retries,
        http_client=httpx2.Client(event_hooks={"response": [keep]}),
    )


def facts(completion: ChatCompletion) -> dict[str, Any]:
    """turnout's own facts, which the SDK keeps as an extra field."""
    extra: dict[str, Any] = completion.model_extra or {}
    return dict(extra["turnout"])


def wait_for_job(api: Served, job_id: str, timeout_s: float = 15) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        response = api.call("GET", f"/v1/jobs/{job_id}", headers=api.auth())
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        return job if job["state"] in ("succeeded", "failed") else None

    return eventually(finished, timeout=timeout_s, interval=0.1, what=f"job {job_id} to finish")


def assert_openai_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}, body
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    return body


# --- the official SDK -----------------------------------------------------------------------------


def test_the_openai_sdk_gets_completions_through_the_queue(api, stack):
    client = sdk(api)
    completion = client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "Hello from the SDK"}]
    )
    content = completion.choices[0].message.content or ""
    assert content.startswith("primary (sim-model) answers")
    assert content.endswith("Hello from the SDK")
    assert completion.model == "sim-model", "the model that served it, not the policy"
    assert facts(completion)["deployment"] == "primary"
    assert [(a["deployment"], a["outcome"]) for a in facts(completion)["attempts"]] == [
        ("primary", "ok")
    ]
    assert facts(completion)["calls"] == 1
    assert stack.primary.chat_requests() == 1
    # A deployment names a route too; the same Idempotency-Key names the same job.
    key = secrets.token_hex(8)
    first, again = (
        client.chat.completions.create(
            model="secondary",
            messages=[{"role": "user", "content": "once"}],
            extra_headers={"Idempotency-Key": key},
        )
        for _ in range(2)
    )
    assert first.id == again.id
    assert facts(first)["deployment"] == "secondary"
    assert stack.secondary.chat_requests() == 1, "one job, one call"


def test_the_sdk_raises_its_own_exceptions(api, stack):
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hi"}]
    with pytest.raises(openai.AuthenticationError) as wrong_token:
        sdk(api, token=secrets.token_urlsafe(32)).chat.completions.create(
            model="default", messages=messages
        )
    assert wrong_token.value.code == "invalid_api_key"
    with pytest.raises(openai.BadRequestError) as streamed:
        sdk(api).chat.completions.create(model="default", messages=messages, stream=True)
    assert streamed.value.param == "stream"
    with pytest.raises(openai.NotFoundError) as unknown:
        sdk(api).chat.completions.create(model="gpt-nonexistent", messages=messages)
    assert unknown.value.code == "model_not_found"
    assert unknown.value.param == "model"
    assert stack.primary.chat_requests() == 0, "nothing was enqueued for any of them"


# --- the OpenAPI document, checked by schemathesis --------------------------------------------


def test_every_answer_matches_the_served_openapi_document(api):
    """Cases generated from the served document (its examples, valid and invalid data) against
    the real server and worker: no 5xx, and every status, content type and body as documented.
    Deterministic (derandomized) and bounded."""
    schema = schemathesis.openapi.from_url(f"{api.url}/openapi.json")
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
        ignored_auth,
    ]
    statuses: dict[str, set[int]] = {}
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operations.append(result.ok())
    assert {op.label for op in operations} == {
        "POST /v1/chat/completions",
        "POST /v1/jobs",
        "GET /v1/jobs/{job_id}",
        "GET /healthz",
        "POST /v1/embeddings",
        "GET /v1/models",
        "GET /v1/models/{model_id}",
    }
    bounded = settings(
        max_examples=25,
        deadline=None,
        derandomize=True,  # the same cases every run: a failure here is never a fluke
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    for operation in operations:
        modes = [schemathesis.GenerationMode.POSITIVE]
        if list(operation.iter_parameters()) or len(operation.body):
            modes.append(schemathesis.GenerationMode.NEGATIVE)  # /healthz has nothing to break
        strategies = [
            *schema.get_strategies_from_examples(operation),  # the document's own examples
            *(operation.as_strategy(mode) for mode in modes),
        ]
        for strategy in strategies:

            @bounded
            @given(case=strategy)
            def check(case: schemathesis.Case[Any]) -> None:
                response = case.call_and_validate(
                    base_url=api.url, headers=api.auth(), checks=checks, timeout=15
                )
                api.keep(response.text)
                statuses.setdefault(case.operation.label, set()).add(response.status_code)

            check()
    # The cases reached the queue and the worker, not only the validation in front of them.
    assert 200 in statuses["POST /v1/chat/completions"], statuses
    assert 202 in statuses["POST /v1/jobs"], statuses
    assert 400 in statuses["POST /v1/chat/completions"], statuses


# --- jobs, health, auth ---------------------------------------------------------------------------


def test_a_job_is_accepted_with_202_then_read_until_done(api):
    accepted = api.call("POST", "/v1/jobs", headers=api.auth(), json=HELLO)
    assert accepted.status_code == 202, accepted.text
    job = accepted.json()
    assert job["object"] == "turnout.job"
    assert job["state"] in ("queued", "running", "succeeded")
    assert accepted.headers["location"] == job["url"] == f"/v1/jobs/{job['id']}"
    done = wait_for_job(api, job["id"])
    assert done["state"] == "succeeded"
    assert done["response"]["status_code"] == 200
    completion = done["response"]["body"]
    assert completion["object"] == "chat.completion"
    assert completion["choices"][0]["message"]["content"].endswith("Hello there")
    assert [(a["deployment"], a["outcome"]) for a in done["attempts"]] == [("primary", "ok")]

    missing = api.call("GET", f"/v1/jobs/{secrets.token_hex(16)}", headers=api.auth())
    assert_openai_error(missing, 404, "job_not_found")


def test_an_idempotency_key_names_one_job_per_caller_and_request(api):
    key = {"Idempotency-Key": secrets.token_hex(8)}

    def job_id(token: str, body: dict[str, Any] = HELLO) -> str:
        accepted = api.call("POST", "/v1/jobs", headers={**api.auth(token), **key}, json=body)
        assert accepted.status_code == 202, accepted.text
        return str(accepted.json()["id"])

    mine = job_id(api.token)
    assert job_id(api.token) == mine, "the same caller, key and request: the same job"
    assert job_id(api.other_token) != mine, "another caller's same key is never my job"
    changed = {**HELLO, "max_tokens": 5}
    assert job_id(api.token, changed) != mine, "another request under the key is another job"
    assert wait_for_job(api, mine)["state"] == "succeeded"

    # Only job ids are looked up: anything else is no job, never another Redis key.
    for odd in (f"{mine}:attempts", "x", mine.upper()):
        assert_openai_error(
            api.call("GET", f"/v1/jobs/{odd}", headers=api.auth()), 404, "job_not_found"
        )


def test_a_job_is_shown_to_the_token_that_submitted_it_and_to_admins_only(api, stack):
    accepted = api.call("POST", "/v1/jobs", headers=api.auth(), json=HELLO)
    assert accepted.status_code == 202, accepted.text
    mine = accepted.json()["id"]
    done = wait_for_job(api, mine)

    def read(job_id: str, token: str) -> httpx.Response:
        answer: httpx.Response = api.call("GET", f"/v1/jobs/{job_id}", headers=api.auth(token))
        return answer

    # Another caller learns nothing, not even that the job exists: a missing job's answer.
    nobody = str(uuid.uuid4())
    theirs = assert_openai_error(read(mine, api.other_token), 404, "job_not_found")
    missing = assert_openai_error(read(nobody, api.other_token), 404, "job_not_found")
    assert json.dumps(theirs).replace(mine, nobody) == json.dumps(missing)
    assert "Hello there" not in json.dumps(theirs)

    admin_view = read(mine, api.admin_token)
    assert admin_view.status_code == 200, admin_view.text
    assert admin_view.json() == done

    # The other caller's job is its own, and not mine; an admin token may submit too.
    accepted = api.call("POST", "/v1/jobs", headers=api.auth(api.other_token), json=HELLO)
    other = accepted.json()["id"]
    assert read(other, api.other_token).status_code == 200
    assert_openai_error(read(other, api.token), 404, "job_not_found")
    assert read(other, api.admin_token).status_code == 200
    accepted = api.call("POST", "/v1/jobs", headers=api.auth(api.admin_token), json=HELLO)
    assert accepted.status_code == 202, accepted.text
    assert_openai_error(read(accepted.json()["id"], api.token), 404, "job_not_found")

    # A job the Python client submitted has no owner: only admins see it through serve.
    with stack.client() as client:
        unowned = client.submit("Hello there").job_id
        assert client.job(unowned).read().owner is None
    assert_openai_error(read(unowned, api.token), 404, "job_not_found")
    assert read(unowned, api.admin_token).status_code == 200


def test_without_auth_jobs_have_no_owner_and_anyone_reads_them(stack, tmp_path):
    env = {**stack.env, "TURNOUT_SERVE_TIMEOUT": str(SERVE_TIMEOUT_S)}
    env.pop("TURNOUT_API_TOKENS", None)
    env.pop("TURNOUT_ADMIN_TOKENS", None)
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    with start_serve(env, tmp_path, port, "--no-auth", name="serve-no-auth") as process:
        process.wait_until(lambda: healthy(url), timeout_s=20, what="200 at /healthz")
        accepted = httpx.post(f"{url}/v1/jobs", json=HELLO, timeout=15)
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["id"]
        anyone = httpx.get(f"{url}/v1/jobs/{job_id}", timeout=15)
        assert anyone.status_code == 200, anyone.text
        assert anyone.json()["id"] == job_id
    with stack.redis() as redis_client:
        assert redis_client.exists(stack.settings_keys().job(job_id))
        assert not redis_client.hexists(stack.settings_keys().job(job_id), "owner")


def test_health_needs_no_token(api):
    response = api.call("GET", "/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_a_request_naming_a_foreign_host_is_refused_421_whatever_its_token(api):
    """DNS rebinding: a page whose name resolves to 127.0.0.1 still sends its own name."""
    for path, headers in (("/healthz", {}), ("/v1/jobs", api.auth())):
        refused = httpx.post(
            api.url + path,
            headers={**headers, "Host": "rebound.example:8000"},
            json=HELLO,
            timeout=15,
        )
        api.keep(refused.text)
        body = assert_openai_error(refused, 421, "host_not_allowed")
        assert "TURNOUT_SERVE_ALLOWED_HOSTS" in body["error"]["message"]
    named = httpx.get(f"http://localhost:{api.port}/healthz", timeout=15)
    assert named.status_code == 200, "loopback names are always allowed"


@pytest.mark.parametrize(
    "tokens",
    ["change-me-to-a-long-random-token", f"{secrets.token_urlsafe(32)},{'a' * 32}"],
    ids=["env-example", "one-weak"],
)
def test_serve_refuses_to_start_with_the_example_token_or_a_weak_one(stack, tokens):
    done = run_cli(
        ["serve", "--port", str(free_port())], {**stack.env, "TURNOUT_API_TOKENS": tokens}
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "TURNOUT_API_TOKENS" in done.stderr
    assert "secrets.token_urlsafe(32)" in done.stderr, "it says how to make one"
    assert "change-me" not in done.stderr
    assert "a" * 32 not in done.stderr


ROUTES = [
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/jobs"),
    ("GET", "/v1/jobs/some-job"),
    ("GET", "/v1/nowhere"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_but_health_answers_401_without_a_good_token(api, method, path):
    guess = secrets.token_urlsafe(32)
    for headers in (
        {},
        {"Authorization": f"Bearer {guess}"},
        {"Authorization": f"Bearer {api.token}x"},
        {"Authorization": f"Basic {api.token}"},
        {"Authorization": "Bearer"},
    ):
        response = api.call(method, path, headers=headers, json=HELLO)
        body = assert_openai_error(response, 401, "invalid_api_key")
        assert body["error"]["type"] == "invalid_request_error"
        assert body["error"]["message"].startswith("Incorrect API key provided")
        assert response.headers["www-authenticate"] == "Bearer"
        assert guess not in response.text
    # Either token of TURNOUT_API_TOKENS is accepted (a rotation's old and new).
    for token in (api.token, api.other_token):
        assert api.call(method, path, headers=api.auth(token), json=HELLO).status_code != 401


def test_unknown_paths_and_methods_answer_in_openai_shape(api):
    assert_openai_error(api.call("GET", "/v1/engines/x", headers=api.auth()), 404, "unknown_url")
    wrong = api.call("GET", "/v1/chat/completions", headers=api.auth())
    assert_openai_error(wrong, 405, "method_not_allowed")
    assert wrong.headers["allow"] == "POST"


# --- bad requests -------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_413_before_it_is_read(api):
    # Declared too large: answered from the headers alone (no byte of body is ever sent; a
    # server that waited for it would time this out).
    connection = http.client.HTTPConnection(LOOPBACK, api.port, timeout=5)
    try:
        connection.putrequest("POST", "/v1/chat/completions")
        for name, value in {
            **api.auth(),
            "Content-Type": "application/json",
            "Content-Length": str(10 * MAX_BODY),
        }.items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        text = response.read().decode()
        api.keep(text)
        assert response.status == 413
        assert json.loads(text)["error"]["code"] == "request_too_large"
    finally:
        connection.close()

    # Chunked: nothing declared, the bytes are counted as they arrive.
    def chunks(total: int) -> Iterator[bytes]:
        """HELLO padded with whitespace (valid JSON) to ``total`` bytes, in pieces."""
        body = json.dumps(HELLO).encode()
        padding = total - len(body)
        yield body[:-1]
        for _ in range(padding // 4096):
            yield b" " * 4096
        yield b" " * (padding % 4096) + body[-1:]

    too_large = api.call(
        "POST",
        "/v1/chat/completions",
        headers={**api.auth(), "Content-Type": "application/json"},
        content=chunks(MAX_BODY + 1024),
    )
    body = assert_openai_error(too_large, 413, "request_too_large")
    assert str(MAX_BODY) in body["error"]["message"]
    # The same body under the limit, chunked too, reaches the app whole.
    fits = api.call(
        "POST",
        "/v1/chat/completions",
        headers={**api.auth(), "Content-Type": "application/json"},
        content=chunks(MAX_BODY - 1024),
    )
    assert fits.status_code == 200, fits.text


def test_malformed_json_and_invalid_fields_are_400_naming_the_problem(api):
    headers = {**api.auth(), "Content-Type": "application/json"}
    broken = api.call("POST", "/v1/chat/completions", headers=headers, content=b'{"model": ')
    assert_openai_error(broken, 400, "invalid_json")
    invalid = api.call(
        "POST",
        "/v1/jobs",
        headers=headers,
        json={"model": "default", "messages": [{"role": "robot", "content": "x"}], "top_p": 7},
    )
    body = assert_openai_error(invalid, 400, "invalid_value")
    assert body["error"]["param"] == "messages.0.role"
    assert "messages.0.role" in body["error"]["message"]
    assert "top_p" in body["error"]["message"], "every problem is named"


# --- jobs that fail or outlive the wait ---------------------------------------------------------


def test_a_failed_job_is_answered_with_its_class_status(api, stack):
    for sim in (stack.primary, stack.secondary):
        sim.set_faults(fail_rate=1.0, fail_status=400)
    refused = api.call("POST", "/v1/chat/completions", headers=api.auth(), json=HELLO)
    body = assert_openai_error(refused, 400, "bad_request")
    assert body["error"]["type"] == "invalid_request_error"
    assert body["turnout"]["deployment"] is None
    assert stack.secondary.chat_requests() == 0, "a bad request fails the job at once"
    with pytest.raises(openai.BadRequestError):
        sdk(api).chat.completions.create(
            model="default", messages=[{"role": "user", "content": "Hello there"}]
        )

    for sim in (stack.primary, stack.secondary):
        sim.set_faults(fail_rate=1.0, fail_status=503)
    failed = api.call("POST", "/v1/chat/completions", headers=api.auth(), json=HELLO)
    body = assert_openai_error(failed, 502, "overloaded")
    assert body["error"]["type"] == "upstream_error"
    assert failed.headers["x-should-retry"] == "false", "turnout has retried already"
    job = wait_for_job(api, body["turnout"]["job_id"])
    assert job["state"] == "failed"
    assert job["response"] == {"status_code": 502, "body": body}
    calls = [a for a in job["attempts"] if a["outcome"] != "skipped"]
    assert {a["deployment"] for a in calls} == {"primary", "secondary"}
    assert body["turnout"]["attempts"] == job["attempts"], "one attempt log, one meaning"
    assert body["turnout"]["calls"] == len(calls)
    # The SDK, with its default retries, takes the answer as final: one job's calls, not three.
    before = stack.primary.chat_requests() + stack.secondary.chat_requests()
    with pytest.raises(openai.APIStatusError) as upstream:
        sdk(api, max_retries=2).chat.completions.create(
            model="default", messages=[{"role": "user", "content": "Hello there"}]
        )
    assert upstream.value.status_code == 502
    after = stack.primary.chat_requests() + stack.secondary.chat_requests()
    assert after - before == len(calls)


def test_a_job_that_outlives_the_wait_is_504_naming_it_and_runs_on(api, stack):
    stack.primary.set_faults(latency_ms=SERVE_TIMEOUT_S * 1000 + 1500)
    started = time.monotonic()
    response = api.call("POST", "/v1/chat/completions", headers=api.auth(), json=HELLO)
    assert SERVE_TIMEOUT_S <= time.monotonic() - started < SERVE_TIMEOUT_S + 2
    body = assert_openai_error(response, 504, "job_pending")
    job_id = body["turnout"]["job_id"]
    assert job_id in body["error"]["message"]
    assert f"GET /v1/jobs/{job_id}" in body["error"]["message"]
    assert response.headers["x-should-retry"] == "false", "a retry would start another job"
    job = wait_for_job(api, job_id)
    assert job["state"] == "succeeded", "the job kept running after the 504"
    assert job["response"]["body"]["choices"][0]["message"]["content"].endswith("Hello there")

    # With an Idempotency-Key, the SDK's own retry of the 504 waits for the same job.
    calls = stack.primary.chat_requests()
    completion = sdk(api, max_retries=2).chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": "Hello there"}],
        extra_headers={"Idempotency-Key": secrets.token_hex(8)},
    )
    assert (completion.choices[0].message.content or "").endswith("Hello there")
    assert stack.primary.chat_requests() == calls + 1, "one job, however often waited for"
    assert any('"job_pending"' in answer for answer in api.answers[-2:]), "the first was a 504"


# --- secrets ------------------------------------------------------------------------------------


def test_no_token_or_key_in_any_answer_or_in_the_log(api):
    """Last in the module: every answer of every test above was kept, and the log holds the
    whole run. A wrong token sent now must not come back either."""
    wrong = secrets.token_urlsafe(32)
    api.call("POST", "/v1/chat/completions", headers=api.auth(wrong), json=HELLO)
    api.call("GET", f"/v1/jobs/x?api_key={wrong}", headers=api.auth())
    assert api.call("POST", "/v1/chat/completions", headers=api.auth(), json=HELLO).is_success
    assert len(api.answers) > 50
    log = api.log()
    assert "POST '/v1/chat/completions' 200" in log, "the log is the server's, with requests"
    for secret in [*api.must_not_leak, wrong]:
        for answer in api.answers:
            assert secret not in answer
        assert secret not in log
