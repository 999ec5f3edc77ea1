"""The Gemini and Vertex adapters without a server: request bodies, URLs, reply parsing, the
google.rpc error table, and the OAuth2 token cache (with real google-auth credentials; only the
HTTP transport under google-auth is replaced)."""

import datetime
import json
import threading
import time

import pytest
from google.auth import exceptions as auth_exceptions
from google.auth import transport
from google.oauth2.credentials import Credentials
from pydantic import SecretStr

from routing.config import DeploymentConfig
from routing.errors import ErrorClass, ProviderError
from routing.models import CompletionRequest
from tests.helpers import eventually
from workers.http import HttpReply
from workers.providers.gemini import (
    GeminiAdapter,
    VertexAdapter,
    vertex_base_url,
    vertex_model_path,
)
from workers.providers.genai_wire import (
    classify_error,
    generate_content_body,
    minimum_thinking_config,
    parse_duration,
    parse_generate_content,
)
from workers.providers.google_auth import AccessTokenCache, credentials_loader, utcnow

REQUEST = CompletionRequest.model_validate(
    {
        "messages": [
            {"role": "system", "content": "be terse"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "one"},
            {"role": "user", "content": "two"},
        ],
        "max_tokens": 64,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": ["END"],
    }
)


def deployment(provider="gemini", model="gemini-2.5-flash"):
    return DeploymentConfig(id=f"{provider}-1", provider=provider, model=model)


# --- the request ------------------------------------------------------------------------------


def test_the_body_maps_roles_merges_turns_and_names_generation_config():
    assert generate_content_body(REQUEST, "gemini-2.5-flash") == {
        "systemInstruction": {"parts": [{"text": "be terse"}]},
        "contents": [
            {"role": "user", "parts": [{"text": "hi"}]},
            {"role": "model", "parts": [{"text": "hello"}]},
            {"role": "user", "parts": [{"text": "one"}, {"text": "two"}]},
        ],
        "generationConfig": {
            "maxOutputTokens": 64,
            "temperature": 0.2,
            "topP": 0.9,
            "stopSequences": ["END"],
        },
    }


def test_a_bare_prompt_sends_no_system_instruction_or_generation_config():
    body = generate_content_body(CompletionRequest.from_prompt("hi"), "gemini-2.5-flash")
    assert body == {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


@pytest.mark.parametrize(
    ("model", "thinking"),
    [
        ("gemini-2.5-pro", {"thinkingBudget": 128}),
        ("models/gemini-2.5-pro-preview-06-05", {"thinkingBudget": 128}),
        ("gemini-2.5-flash", {"thinkingBudget": 0}),
        ("gemini-2.5-flash-lite", {"thinkingBudget": 0}),
        ("gemini-3-pro-preview", {"thinkingLevel": "LOW"}),
        ("gemini-3.1-flash", {"thinkingLevel": "LOW"}),
        ("gemini-2.0-flash", None),
        ("gemini-1.5-pro-002", None),
        ("gemma-3-27b-it", None),
        ("gemini-flash-latest", None),
    ],
)
def test_minimum_thinking_per_model(model, thinking):
    assert minimum_thinking_config(model) == thinking
    body = generate_content_body(REQUEST, model, minimum_thinking=True)
    assert body["generationConfig"].get("thinkingConfig") == thinking


def test_thinking_is_left_alone_unless_asked():
    body = generate_content_body(REQUEST, "gemini-2.5-pro", minimum_thinking=False)
    assert "thinkingConfig" not in body["generationConfig"]


def test_the_gemini_call_carries_the_key_in_a_header_only():
    adapter = GeminiAdapter(
        deployment(),
        base_url="https://generativelanguage.googleapis.com/v1beta/",
        api_key=SecretStr("AIza-test-key"),
    )
    call = adapter.build_call(REQUEST)
    assert (call.method, call.url) == (
        "POST",
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent",
    )
    assert call.headers["x-goog-api-key"] == "AIza-test-key"
    assert "authorization" not in call.headers
    assert "AIza-test-key" not in call.url
    assert "AIza-test-key" not in repr(call)
    assert json.loads(call.body) == generate_content_body(REQUEST, "gemini-2.5-flash")
    probe = adapter.build_probe()
    assert (probe.method, probe.url, probe.body) == (
        "GET",
        "https://generativelanguage.googleapis.com/v1beta/models?pageSize=1",
        b"",
    )
    assert probe.headers["x-goog-api-key"] == "AIza-test-key"


@pytest.mark.parametrize(
    ("model", "path"),
    [
        ("models/gemini-2.5-pro", "/models/gemini-2.5-pro:generateContent"),
        ("tunedModels/my-tune", "/tunedModels/my-tune:generateContent"),
    ],
)
def test_gemini_model_names_are_not_prefixed_twice(model, path):
    adapter = GeminiAdapter(deployment(model=model), base_url="https://g/v1beta", api_key=None)
    assert adapter.build_call(REQUEST).url == f"https://g/v1beta{path}"
    assert "x-goog-api-key" not in adapter.build_call(REQUEST).headers


@pytest.mark.parametrize(
    ("location", "override", "base"),
    [
        ("us-central1", None, "https://us-central1-aiplatform.googleapis.com"),
        ("europe-west4", None, "https://europe-west4-aiplatform.googleapis.com"),
        ("global", None, "https://aiplatform.googleapis.com"),
        ("us", None, "https://aiplatform.us.rep.googleapis.com"),
        ("us-central1", "http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("us-central1", "https://proxy.example/vertex/v1", "https://proxy.example/vertex"),
    ],
)
def test_vertex_base_urls(location, override, base):
    assert vertex_base_url(location, override) == base


@pytest.mark.parametrize(
    ("model", "path"),
    [
        ("gemini-2.5-pro", "projects/p/locations/l/publishers/google/models/gemini-2.5-pro"),
        ("models/gemini-2.5-pro", "projects/p/locations/l/publishers/google/models/gemini-2.5-pro"),
        ("publishers/google/models/x", "projects/p/locations/l/publishers/google/models/x"),
        ("projects/q/locations/m/endpoints/7", "projects/q/locations/m/endpoints/7"),
    ],
)
def test_vertex_model_paths(model, path):
    assert vertex_model_path("p", "l", model) == path


# --- the response -----------------------------------------------------------------------------


def response(finish="STOP", parts=None, **extra):
    candidate = {
        "content": {
            "role": "model",
            "parts": [{"text": "Hel"}, {"text": "lo"}] if parts is None else parts,
        },
        "finishReason": finish,
        "index": 0,
    }
    body = {
        "candidates": [candidate],
        "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2, "totalTokenCount": 7},
        "modelVersion": "gemini-2.5-flash-001",
        "responseId": "resp-1",
        **extra,
    }
    return json.dumps(body).encode()


def test_a_completion_joins_text_parts_and_skips_thoughts():
    parts = [{"text": "thinking...", "thought": True}, {"text": "Hel"}, {"text": "lo"}]
    result = parse_generate_content(response(parts=parts))
    assert (result.text, result.finish_reason, result.provider_finish_reason) == (
        "Hello",
        "stop",
        "STOP",
    )
    assert (result.model, result.response_id) == ("gemini-2.5-flash-001", "resp-1")


def test_usage_counts_thoughts_as_output_and_reads_the_cache():
    usage = {
        "promptTokenCount": 100,
        "candidatesTokenCount": 20,
        "thoughtsTokenCount": 30,
        "toolUsePromptTokenCount": 4,
        "cachedContentTokenCount": 64,
        "totalTokenCount": 154,
    }
    result = parse_generate_content(response(usageMetadata=usage))
    assert result.usage is not None
    assert result.usage.model_dump() == {
        "prompt_tokens": 104,
        "completion_tokens": 50,
        "total_tokens": 154,
        "cached_tokens": 64,
    }


@pytest.mark.parametrize(
    ("finish", "expected"),
    [("STOP", "stop"), ("MAX_TOKENS", "length"), ("CONTINUATION", "length"), ("OTHER", "error")],
)
def test_finish_reasons_that_keep_the_text(finish, expected):
    result = parse_generate_content(response(finish))
    assert (result.text, result.finish_reason, result.provider_finish_reason) == (
        "Hello",
        expected,
        finish,
    )


@pytest.mark.parametrize(
    ("finish", "error_class"),
    [
        *[
            (reason, ErrorClass.CONTENT_POLICY)
            for reason in (
                "SAFETY",
                "RECITATION",
                "BLOCKLIST",
                "PROHIBITED_CONTENT",
                "SPII",
                "LANGUAGE",
                "IMAGE_SAFETY",
                "IMAGE_PROHIBITED_CONTENT",
                "IMAGE_RECITATION",
                "IMAGE_OTHER",
                "MODEL_ARMOR",
            )
        ],
        ("PUP_LIMITED_DISABLED", ErrorClass.PERMISSION),
        ("MALFORMED_FUNCTION_CALL", ErrorClass.SERVER_ERROR),
        ("UNEXPECTED_TOOL_CALL", ErrorClass.SERVER_ERROR),
        ("TOO_MANY_TOOL_CALLS", ErrorClass.SERVER_ERROR),
        ("MALFORMED_RESPONSE", ErrorClass.SERVER_ERROR),
    ],
)
def test_finish_reasons_that_fail_the_attempt(finish, error_class):
    with pytest.raises(ProviderError) as caught:
        parse_generate_content(response(finish))
    assert caught.value.error_class is error_class
    assert (caught.value.status_code, caught.value.provider_code) == (200, finish)


def test_a_safety_stop_without_content_is_content_policy():
    body = json.dumps({"candidates": [{"finishReason": "SAFETY", "index": 0}]}).encode()
    with pytest.raises(ProviderError) as caught:
        parse_generate_content(body)
    assert caught.value.error_class is ErrorClass.CONTENT_POLICY


def test_an_unknown_stop_without_text_is_invalid():
    with pytest.raises(ProviderError) as caught:
        parse_generate_content(response("OTHER", parts=[]))
    assert caught.value.error_class is ErrorClass.INVALID_RESPONSE


def test_a_blocked_prompt_is_content_policy():
    body = {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}, "usageMetadata": {}}
    with pytest.raises(ProviderError) as caught:
        parse_generate_content(json.dumps(body).encode())
    assert caught.value.error_class is ErrorClass.CONTENT_POLICY
    assert caught.value.provider_code == "PROHIBITED_CONTENT"


@pytest.mark.parametrize(
    "body",
    [
        b'{"candidates": [',
        b"[]",
        b'{"choices": [{"message": {"content": "hi"}}]}',
        b'{"candidates": []}',
        b'{"candidates": ["x"]}',
        b'{"candidates": [{"content": {"parts": "text"}, "finishReason": "STOP"}]}',
        b'{"candidates": [{"content": {"parts": [{"text": 5}]}, "finishReason": "STOP"}]}',
    ],
)
def test_a_200_that_is_not_a_generate_content_response_is_invalid(body):
    with pytest.raises(ProviderError) as caught:
        parse_generate_content(body)
    assert caught.value.error_class is ErrorClass.INVALID_RESPONSE


# --- errors -----------------------------------------------------------------------------------


def rpc(code, status, message="error", *details):
    error = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = list(details)
    return json.dumps({"error": error}).encode()


def info(reason):
    return {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": "googleapis.com",
    }


def retry(delay):
    return {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}


BAD_KEY = "API key not valid. Please pass a valid API key."
TOO_LONG = "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576)."
LEAKED = "Your API key was reported as leaked. Please use another API key."
UNREGISTERED = "Method doesn't allow unregistered callers (callers without established identity)."
E = ErrorClass
CASES = [
    (400, rpc(400, "INVALID_ARGUMENT", BAD_KEY, info("API_KEY_INVALID")), E.AUTH),
    (400, rpc(400, "INVALID_ARGUMENT", TOO_LONG), E.CONTEXT_LENGTH),
    (400, rpc(400, "INVALID_ARGUMENT", "Request contains an invalid argument."), E.BAD_REQUEST),
    (400, rpc(400, "FAILED_PRECONDITION", "User location is not supported."), E.PERMISSION),
    (401, rpc(401, "UNAUTHENTICATED", "Request had invalid authentication."), E.AUTH),
    (402, rpc(402, "RESOURCE_EXHAUSTED", "Your prepayment credits are depleted."), E.PERMISSION),
    (403, rpc(403, "PERMISSION_DENIED", "The caller does not have permission"), E.PERMISSION),
    (403, rpc(403, "PERMISSION_DENIED", "API disabled", info("SERVICE_DISABLED")), E.PERMISSION),
    (403, rpc(403, "PERMISSION_DENIED", "blocked", info("API_KEY_SERVICE_BLOCKED")), E.AUTH),
    (403, rpc(403, "PERMISSION_DENIED", LEAKED), E.AUTH),
    (403, rpc(403, "PERMISSION_DENIED", UNREGISTERED), E.AUTH),
    (404, rpc(404, "NOT_FOUND", "models/gemini-9 is not found"), E.MODEL_NOT_FOUND),
    (408, b"Request Timeout", E.TIMEOUT),
    (429, rpc(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota"), E.RATE_LIMITED),
    (499, rpc(499, "CANCELLED", "The operation was cancelled."), E.SERVER_ERROR),
    (500, rpc(500, "INTERNAL", "An internal error has occurred."), E.SERVER_ERROR),
    (500, rpc(500, "INTERNAL", "Your input context is too long."), E.CONTEXT_LENGTH),
    (502, b"<html>Bad Gateway</html>", E.SERVER_ERROR),
    (503, rpc(503, "UNAVAILABLE", "The model is overloaded."), E.OVERLOADED),
    (504, rpc(504, "DEADLINE_EXCEEDED", "Deadline expired."), E.TIMEOUT),
    (405, b"<html>Method Not Allowed</html>", E.INVALID_RESPONSE),
    (418, rpc(418, "UNKNOWN", "?"), E.INVALID_RESPONSE),
]


@pytest.mark.parametrize(("status", "body", "error_class"), CASES)
def test_the_classification_table(status, body, error_class):
    error = classify_error("gemini", status, body, {})
    assert error.error_class is error_class
    assert error.status_code == status
    assert str(status) in error.message


def test_a_list_wrapped_envelope_and_its_reason():
    body = b"[" + rpc(400, "INVALID_ARGUMENT", "API key expired.", info("API_KEY_INVALID")) + b"]"
    error = classify_error("gemini", 400, body, {})
    assert (error.error_class, error.provider_code) == (ErrorClass.AUTH, "API_KEY_INVALID")
    assert "INVALID_ARGUMENT" in error.message
    assert "API key expired." in error.message


@pytest.mark.parametrize(
    ("delay", "seconds"),
    [("41s", 41.0), ("1.5s", 1.5), ("0.250s", 0.25), ("3", 3.0), ("soon", None), (7, None)],
)
def test_protobuf_durations(delay, seconds):
    assert parse_duration(delay) == seconds


def test_a_429_waits_as_retry_info_says_then_as_headers_say():
    body = rpc(429, "RESOURCE_EXHAUSTED", "quota", {"@type": "x.QuotaFailure"}, retry("41s"))
    error = classify_error("gemini", 429, body, {"retry-after": "5"})
    assert (error.error_class, error.retry_after_s) == (ErrorClass.RATE_LIMITED, 41.0)
    assert error.provider_code == "RESOURCE_EXHAUSTED"
    plain = classify_error("vertex", 429, rpc(429, "RESOURCE_EXHAUSTED"), {"retry-after": "5"})
    assert plain.retry_after_s == 5.0
    assert classify_error("vertex", 429, rpc(429, "RESOURCE_EXHAUSTED"), {}).retry_after_s is None


def test_probe_replies():
    adapter = GeminiAdapter(deployment(), base_url="https://g/v1beta", api_key=SecretStr("k"))
    adapter.read_probe(HttpReply(200, {}, b'{"models": []}', 0.1))
    for status, body, error_class in [
        (400, CASES[0][1], ErrorClass.AUTH),
        (200, b"<html>captive portal</html>", ErrorClass.INVALID_RESPONSE),
    ]:
        with pytest.raises(ProviderError) as caught:
            adapter.read_probe(HttpReply(status, {}, body, 0.1))
        assert caught.value.error_class is error_class


# --- the token cache --------------------------------------------------------------------------


class _Response(transport.Response):
    def __init__(self, status, payload):
        self._status, self._data = status, json.dumps(payload).encode()

    @property
    def status(self):
        return self._status

    @property
    def headers(self):
        return {"content-type": "application/json"}

    @property
    def data(self):
        return self._data


class TokenEndpoint(transport.Request):
    """google-auth's transport seam: answers the refresh-token grant with numbered tokens."""

    def __init__(self, *, delay_s=0.0, gate=None, status=200, expires_in=3600):
        self.calls = 0
        self.delay_s, self.gate, self.status, self.expires_in = delay_s, gate, status, expires_in
        self.lock = threading.Lock()

    def __call__(self, url, method="GET", body=None, headers=None, timeout=None, **kwargs):
        with self.lock:
            self.calls += 1
            number = self.calls
        if self.gate is not None:
            self.gate.wait(5)
        time.sleep(self.delay_s)
        if self.status != 200:
            return _Response(self.status, {"error": "invalid_grant", "error_description": "Bad"})
        return _Response(200, {"access_token": f"minted-{number}", "expires_in": self.expires_in})


def user_credentials(token="old-token", expires_in_s=3600):  # noqa: S107
    expiry = None if token is None else utcnow() + datetime.timedelta(seconds=expires_in_s)
    return Credentials(
        token=token,
        expiry=expiry,
        refresh_token="refresh-1",
        token_uri="https://oauth2.example/token",
        client_id="client",
        client_secret="secret",
    )


def test_credentials_that_come_with_a_fresh_token_are_used_as_they_are():
    endpoint = TokenEndpoint()
    cache = AccessTokenCache(lambda: user_credentials(expires_in_s=3600), request=endpoint)
    assert [cache.token(), cache.token()] == ["old-token", "old-token"]
    assert (endpoint.calls, cache.refreshes) == (0, 0)


def test_a_token_within_five_minutes_of_expiry_is_refreshed_first():
    credentials = user_credentials(expires_in_s=4 * 60)
    assert not credentials.expired  # google-auth alone would still send it
    endpoint = TokenEndpoint()
    cache = AccessTokenCache(lambda: credentials, request=endpoint)
    assert cache.token() == "minted-1"
    assert cache.token() == "minted-1"
    assert endpoint.calls == 1


def test_a_token_that_lives_long_enough_is_not_refreshed():
    endpoint = TokenEndpoint(expires_in=3600)
    cache = AccessTokenCache(lambda: user_credentials(token=None), request=endpoint)
    tokens = {cache.token() for _ in range(5)}
    assert (tokens, endpoint.calls) == ({"minted-1"}, 1)
    short = TokenEndpoint(expires_in=240)  # shorter than the margin: every call refreshes
    cache = AccessTokenCache(lambda: user_credentials(token=None), request=short)
    assert [cache.token() for _ in range(3)] == ["minted-1", "minted-2", "minted-3"]


def test_many_threads_share_one_refresh():
    endpoint = TokenEndpoint(delay_s=0.2)
    cache = AccessTokenCache(lambda: user_credentials(token=None), request=endpoint)
    barrier = threading.Barrier(16)
    seen = []

    def work():
        barrier.wait()
        seen.append(cache.token())

    threads = [threading.Thread(target=work) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert seen == ["minted-1"] * 16
    assert endpoint.calls == 1


def test_while_one_thread_refreshes_others_keep_a_still_valid_token():
    clock = {"now": utcnow()}
    gate = threading.Event()
    endpoint = TokenEndpoint(gate=gate, expires_in=7200)
    cache = AccessTokenCache(
        lambda: user_credentials(expires_in_s=3600), request=endpoint, now=lambda: clock["now"]
    )
    assert cache.token() == "old-token"
    clock["now"] += datetime.timedelta(minutes=58)  # 2 minutes left: due, but still usable
    refreshed = []
    refresher = threading.Thread(target=lambda: refreshed.append(cache.token()))
    refresher.start()
    eventually(lambda: endpoint.calls, timeout=5, interval=0.01, what="the refresh to start")
    assert cache.token() == "old-token"  # not stuck behind the refresh
    gate.set()
    refresher.join(5)
    assert refreshed == ["minted-1"]
    assert cache.token() == "minted-1"
    assert endpoint.calls == 1


def test_an_almost_expired_token_is_never_handed_out():
    clock = {"now": utcnow()}
    endpoint = TokenEndpoint(delay_s=0.2, expires_in=7200)
    cache = AccessTokenCache(
        lambda: user_credentials(expires_in_s=3600), request=endpoint, now=lambda: clock["now"]
    )
    assert cache.token() == "old-token"
    clock["now"] += datetime.timedelta(minutes=59, seconds=45)  # 15 s left
    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.token())) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert results == ["minted-1"] * 4
    assert endpoint.calls == 1


def test_invalidate_forces_a_new_token():
    endpoint = TokenEndpoint()
    cache = AccessTokenCache(lambda: user_credentials(token=None), request=endpoint)
    assert cache.token() == "minted-1"
    assert cache.invalidate("minted-1") is True
    assert cache.token() == "minted-2"


def test_invalidating_a_token_no_longer_cached_keeps_the_fresh_one():
    endpoint = TokenEndpoint()
    cache = AccessTokenCache(lambda: user_credentials(token=None), request=endpoint)
    assert cache.token() == "minted-1"
    cache.invalidate("minted-1")
    assert cache.token() == "minted-2"
    assert cache.invalidate("minted-1") is False  # a late 401 for the old token
    assert cache.token() == "minted-2"
    assert endpoint.calls == 2


def test_refresh_failures_become_provider_errors():
    refused = AccessTokenCache(
        lambda: user_credentials(token=None), request=TokenEndpoint(status=400)
    )
    with pytest.raises(ProviderError) as caught:
        refused.token()
    assert caught.value.error_class is ErrorClass.AUTH
    assert "invalid_grant" in caught.value.message

    class Unreachable(transport.Request):
        def __call__(self, *args, **kwargs):
            raise auth_exceptions.TransportError("connection refused")

    down = AccessTokenCache(lambda: user_credentials(token=None), request=Unreachable())
    with pytest.raises(ProviderError) as caught:
        down.token()
    assert caught.value.error_class is ErrorClass.CONNECTION
    missing = AccessTokenCache(credentials_loader("/nonexistent/sa.json"), request=TokenEndpoint())
    with pytest.raises(ProviderError) as caught:
        missing.token()
    assert caught.value.error_class is ErrorClass.AUTH


def vertex(credentials, endpoint, **overrides):
    return VertexAdapter(
        deployment("vertex"),
        project="proj-1",
        location=overrides.pop("location", "us-central1"),
        tokens=AccessTokenCache(lambda: credentials, request=endpoint),
        **overrides,
    )


def test_the_vertex_call_uses_the_cached_bearer_token_and_quota_project():
    endpoint = TokenEndpoint()
    adapter = vertex(user_credentials(token=None).with_quota_project("billing-1"), endpoint)
    call = adapter.build_call(REQUEST)
    assert (call.method, call.url) == (
        "POST",
        "https://us-central1-aiplatform.googleapis.com/v1/projects/proj-1/locations/us-central1"
        "/publishers/google/models/gemini-2.5-flash:generateContent",
    )
    assert call.headers["authorization"] == "Bearer minted-1"
    assert call.headers["x-goog-user-project"] == "billing-1"
    assert "x-goog-api-key" not in call.headers
    assert json.loads(call.body) == generate_content_body(REQUEST, "gemini-2.5-flash")
    probe = adapter.build_probe()
    assert probe.url.endswith("/publishers/google/models/gemini-2.5-flash:countTokens")
    assert json.loads(probe.body) == {"contents": [{"role": "user", "parts": [{"text": "ping"}]}]}
    assert probe.headers["authorization"] == "Bearer minted-1"
    assert endpoint.calls == 1


def test_a_vertex_401_drops_the_token_so_the_next_call_mints_one():
    endpoint = TokenEndpoint()
    adapter = vertex(user_credentials(token=None), endpoint, location="global", base_url=None)
    assert adapter.build_call(REQUEST).url.startswith("https://aiplatform.googleapis.com/v1/")
    with pytest.raises(ProviderError) as caught:
        adapter.parse_reply(HttpReply(401, {}, rpc(401, "UNAUTHENTICATED"), 0.1))
    assert caught.value.error_class is ErrorClass.AUTH
    assert adapter.build_call(REQUEST).headers["authorization"] == "Bearer minted-2"


def test_a_late_vertex_401_for_an_old_token_keeps_the_fresh_one():
    endpoint = TokenEndpoint()
    adapter = vertex(user_credentials(token=None), endpoint)
    unauthorized = HttpReply(401, {}, rpc(401, "UNAUTHENTICATED"), 0.1)
    sent, reply_arrives, outcome = [], threading.Event(), []

    def slow_call():  # a call made with minted-1 whose 401 arrives late
        sent.append(adapter.build_call(REQUEST).headers["authorization"])
        reply_arrives.wait(5)
        try:
            adapter.parse_reply(unauthorized)
        except ProviderError as exc:
            outcome.append(exc.error_class)

    slow = threading.Thread(target=slow_call)
    slow.start()
    eventually(lambda: sent, timeout=5, interval=0.01, what="the slow call to be sent")
    assert sent == ["Bearer minted-1"]
    adapter.build_call(REQUEST)  # meanwhile this thread's call is refused: a new token is minted
    with pytest.raises(ProviderError):
        adapter.parse_reply(unauthorized)
    assert adapter.build_call(REQUEST).headers["authorization"] == "Bearer minted-2"
    reply_arrives.set()
    slow.join(5)
    assert outcome == [ErrorClass.AUTH]
    assert adapter.build_call(REQUEST).headers["authorization"] == "Bearer minted-2"
    assert endpoint.calls == 2


def test_an_error_with_odd_details_still_classifies():
    body = json.dumps(
        {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "quota", "details": 5}}
    ).encode()
    assert classify_error("gemini", 429, body, {}).error_class is ErrorClass.RATE_LIMITED
