"""The Vertex AI adapter against the Vertex simulator over HTTP, through google-auth's real
service-account flow: a key file whose token_uri is the simulator's token endpoint, a freshly
generated RSA key, a signed JWT-bearer grant the simulator verifies, and the bearer token it
issues on every call."""

import threading
import time

import pytest

from ops.simulator.vertex_sim import VertexSimulator
from routing.errors import ErrorClass, ProviderError
from routing.models import CompletionRequest
from tests.providers.harness import (
    TRANSPORT,
    ServiceAccountKey,
    adapter_for,
    complete,
    control,
    probe,
    recent,
    serving,
    settings,
)

PROJECT, LOCATION, MODEL = "proj-1", "us-central1", "gemini-2.5-flash"
MODEL_PATH = f"/v1/projects/{PROJECT}/locations/{LOCATION}/publishers/google/models/{MODEL}"
REQUEST = CompletionRequest.model_validate(
    {
        "messages": [{"role": "system", "content": "be terse"}, {"role": "user", "content": "hi"}],
        "max_tokens": 50,
        "temperature": 0.5,
    }
)


@pytest.fixture(autouse=True)
def _no_ambient_google_settings(monkeypatch):
    """google-auth reads these itself; a developer's own must not leak into the tests."""
    for name in ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_QUOTA_PROJECT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def sa_key():
    return ServiceAccountKey.generate()


@pytest.fixture
def simulator(sa_key):
    return VertexSimulator(
        name="vtx", models=[MODEL], trusted_keys={sa_key.key_id: sa_key.public_pem}
    )


@pytest.fixture
def server(simulator):
    with serving(simulator) as running:
        yield running


@pytest.fixture
def key_file(sa_key, server, tmp_path):
    return sa_key.write(tmp_path / "sa.json", f"{server.url}/token", project=PROJECT)


def vertex_env(key_file, server=None, **env):
    values = {"GOOGLE_CLOUD_PROJECT": PROJECT, "GOOGLE_CLOUD_LOCATION": LOCATION, **env}
    if key_file is not None:
        values["GOOGLE_APPLICATION_CREDENTIALS"] = str(key_file)
    if server is not None:
        values["VERTEX_BASE_URL"] = server.url
    return settings(**values)


def adapter(server, key_file, **env):
    return adapter_for("vertex", MODEL, vertex_env(key_file, server, **env))


def token_grants(server):
    return control(server, "state")["stats"]["requests"].get("/token", 0)


def test_the_request_on_the_wire_and_the_parsed_result(server, key_file):
    ours = adapter(server, key_file)
    result = complete(ours, REQUEST)
    complete(ours, REQUEST)
    sent = recent(server)[0]
    assert (sent["method"], sent["path"], sent["query"]) == (
        "POST",
        f"{MODEL_PATH}:generateContent",
        {},
    )
    assert sent["query_has_key"] is False
    assert sent["headers"]["authorization"] == "Bearer [hidden]"
    assert "x-goog-api-key" not in sent["headers"]
    assert "x-goog-user-project" not in sent["headers"]
    assert sent["body"] == {
        "systemInstruction": {"parts": [{"text": "be terse"}]},
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "generationConfig": {"maxOutputTokens": 50, "temperature": 0.5},
    }
    assert [r["auth_ok"] for r in recent(server)] == [True, True]
    assert token_grants(server) == 1  # one token, cached for both calls
    assert result.text.startswith(f"vtx ({MODEL}) answers")
    assert (result.finish_reason, result.model) == ("stop", MODEL)
    assert result.usage is not None
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens


def test_a_deployment_base_url_and_the_quota_project_variable(server, key_file, monkeypatch):
    monkeypatch.setenv("GOOGLE_CLOUD_QUOTA_PROJECT", "bill-7")
    ours = adapter_for("vertex", MODEL, vertex_env(key_file), base_url=server.url)
    complete(ours, REQUEST)
    sent = recent(server)[0]
    assert sent["path"] == f"{MODEL_PATH}:generateContent"
    assert sent["headers"]["x-goog-user-project"] == "bill-7"


def test_application_default_credentials(server, key_file, monkeypatch):
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    monkeypatch.setenv("GOOGLE_CLOUD_QUOTA_PROJECT", "bill-8")
    complete(adapter_for("vertex", MODEL, vertex_env(None, server)), REQUEST)
    sent = recent(server)[0]
    assert sent["auth_ok"] is True
    assert sent["headers"]["x-goog-user-project"] == "bill-8"


def test_a_token_close_to_expiry_is_replaced_before_use(sa_key, tmp_path):
    short_lived = VertexSimulator(
        name="vtx", trusted_keys={sa_key.key_id: sa_key.public_pem}, token_lifetime_s=240
    )
    with serving(short_lived) as server:
        ours = adapter(
            server, sa_key.write(tmp_path / "sa.json", f"{server.url}/token", project=PROJECT)
        )
        for _ in range(3):
            complete(ours, REQUEST)
        assert token_grants(server) == 3  # 4 minutes is inside the 5-minute margin


def test_a_revoked_token_fails_once_then_a_new_one_is_minted(server, simulator, key_file):
    ours = adapter(server, key_file)
    complete(ours, REQUEST)
    simulator.revoke_tokens()
    with pytest.raises(ProviderError) as caught:
        complete(ours, REQUEST)
    assert (caught.value.error_class, caught.value.status_code) == (ErrorClass.AUTH, 401)
    assert caught.value.provider_code == "ACCESS_TOKEN_TYPE_UNSUPPORTED"
    complete(ours, REQUEST)
    assert [r["auth_ok"] for r in recent(server)] == [True, False, True]
    assert token_grants(server) == 2


def test_a_late_401_for_a_revoked_token_keeps_the_one_minted_since(server, simulator, key_file):
    ours = adapter(server, key_file)
    complete(ours, REQUEST)
    built, go, outcome = [], threading.Event(), []

    def slow_call():  # builds its call with the first token, sends it late
        built.append(ours.build_call(REQUEST))
        go.wait(5)
        try:
            ours.parse_reply(TRANSPORT.send(built[0], timeout_s=5))
        except ProviderError as exc:
            outcome.append(exc.error_class)

    slow = threading.Thread(target=slow_call)
    slow.start()
    deadline = time.monotonic() + 5
    while not built and time.monotonic() < deadline:
        time.sleep(0.01)
    simulator.revoke_tokens()
    with pytest.raises(ProviderError):
        complete(ours, REQUEST)  # the first token is refused and dropped
    complete(ours, REQUEST)  # a second one is minted
    go.set()
    slow.join(5)
    assert outcome == [ErrorClass.AUTH]  # the late call's 401, for the first token
    complete(ours, REQUEST)
    assert [r["auth_ok"] for r in recent(server)] == [True, False, True, False, True]
    assert token_grants(server) == 2  # the second token survived the late 401


def test_twenty_threads_with_a_refused_key_make_one_grant_request(server, tmp_path):
    stranger = ServiceAccountKey.generate("kid-1")
    ours = adapter(
        server, stranger.write(tmp_path / "sa.json", f"{server.url}/token", project=PROJECT)
    )
    barrier, outcomes = threading.Barrier(20), []

    def call():
        barrier.wait()
        started = time.monotonic()
        try:
            complete(ours, REQUEST)
        except ProviderError as exc:
            outcomes.append((exc.error_class, time.monotonic() - started))

    threads = [threading.Thread(target=call) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert [error_class for error_class, _ in outcomes] == [ErrorClass.AUTH] * 20
    assert max(took for _, took in outcomes) < 3.0
    assert token_grants(server) == 1  # one refresh; the others failed fast with its error
    assert recent(server) == []


def test_the_probe_counts_tokens_and_a_401_fails_it(server, simulator, key_file):
    ours = adapter(server, key_file)
    probe(ours)
    assert control(server, "state")["stats"]["requests"][f"{MODEL_PATH}:countTokens"] == 1
    simulator.revoke_tokens()
    with pytest.raises(ProviderError) as probed:
        probe(ours)
    assert probed.value.error_class is ErrorClass.AUTH
    probe(ours)  # the 401 dropped the token; a new one is minted


def test_a_missing_key_file_is_auth(server, tmp_path):
    with pytest.raises(ProviderError) as caught:
        complete(adapter(server, tmp_path / "nowhere.json"), REQUEST)
    assert caught.value.error_class is ErrorClass.AUTH


def test_a_key_the_token_endpoint_does_not_trust_sends_no_call(server, tmp_path):
    """(That it is auth for call and probe: test_protocol_contract.py.)"""
    stranger = ServiceAccountKey.generate("kid-1")  # same key id, different key
    ours = adapter(
        server, stranger.write(tmp_path / "sa.json", f"{server.url}/token", project=PROJECT)
    )
    with pytest.raises(ProviderError):
        complete(ours, REQUEST)
    with pytest.raises(ProviderError):
        probe(ours)
    assert recent(server) == []  # no call left without a token
