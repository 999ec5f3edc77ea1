"""The Vertex token cache against token endpoints on 127.0.0.1: real google-auth credentials
(gcloud user credentials, a service-account key, Compute Engine) refreshing over google-auth's
requests transport, with endpoints that fail, hang, or answer with a proxy's HTML page."""

import asyncio
import datetime
import json
import threading
import time
import urllib.parse

import pytest
from google.auth.compute_engine import _metadata
from google.auth.compute_engine import credentials as compute_engine
from google.oauth2.credentials import Credentials

from ops.simulator.server import ServerThread
from routing.errors import ErrorClass, ProviderError
from tests.helpers import eventually
from tests.providers.harness import ServiceAccountKey
from workers.providers.google_auth import (
    AccessTokenCache,
    credentials_loader,
    describe,
    utcnow,
)
from workers.providers.reading import MAX_ERROR_MESSAGE


@pytest.fixture(autouse=True)
def _no_ambient_google_settings(monkeypatch):
    """google-auth reads these itself; a developer's own must not leak into the tests."""
    for name in ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_QUOTA_PROJECT"):
        monkeypatch.delenv(name, raising=False)


class TokenServer:
    """An OAuth2 token endpoint as an ASGI app: answers every grant with ``minted-<n>`` (or,
    when told to fail, with ``status`` and ``page``) after ``delay_s``; counts the grants."""

    def __init__(self, *, status=200, page=None, content_type="application/json", delay_s=0.0):
        self.status, self.page, self.content_type = status, page, content_type
        self.delay_s = delay_s
        self.grants: list[dict[str, str]] = []
        self.url = ""  # the token URI, once served

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        form = dict(urllib.parse.parse_qsl(body.decode()))
        self.grants.append(form)
        number = len(self.grants)
        await asyncio.sleep(self.delay_s)
        if self.status == 200:
            reply = {"access_token": f"minted-{number}", "expires_in": 3600}
            status, content_type, payload = 200, "application/json", json.dumps(reply).encode()
        else:
            status, content_type = self.status, self.content_type
            payload = self.page(form) if callable(self.page) else self.page
        headers = [(b"content-type", content_type.encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


INVALID_GRANT = json.dumps({"error": "invalid_grant", "error_description": "Bad"}).encode()


@pytest.fixture
def endpoint():
    app = TokenServer()
    with ServerThread(app) as server:
        app.url = f"{server.url}/token"
        yield app


def user_credentials(token_uri, token="old-token", expires_in_s=3600.0):  # noqa: S107
    expiry = None if token is None else utcnow() + datetime.timedelta(seconds=expires_in_s)
    return Credentials(
        token=token,
        expiry=expiry,
        refresh_token="refresh-1",
        token_uri=token_uri,
        client_id="client",
        client_secret="secret",
    )


def in_threads(count, work):
    """Run ``work`` in ``count`` threads at once: what each returned or raised, and how long
    the slowest took."""
    barrier, outcomes, lock = threading.Barrier(count), [], threading.Lock()

    def run():
        barrier.wait()
        started = time.monotonic()
        try:
            outcome = work()
        except ProviderError as exc:
            outcome = exc
        with lock:
            outcomes.append((outcome, time.monotonic() - started))

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(outcomes) == count
    return [outcome for outcome, _ in outcomes], max(took for _, took in outcomes)


# --- a failed refresh -------------------------------------------------------------------------


def test_a_still_valid_token_survives_a_failed_refresh(endpoint):
    endpoint.status, endpoint.page = 400, INVALID_GRANT
    clock = {"now": utcnow()}
    cache = AccessTokenCache(
        lambda: user_credentials(endpoint.url), cooldown_s=60, now=lambda: clock["now"]
    )
    assert cache.token() == "old-token"
    clock["now"] += datetime.timedelta(minutes=58)  # 2 minutes left: due, still usable
    assert cache.token() == "old-token"  # the refresh failed; the token still works
    assert [cache.token() for _ in range(5)] == ["old-token"] * 5
    assert len(endpoint.grants) == 1  # not retried on every call within the cooldown
    clock["now"] += datetime.timedelta(minutes=1, seconds=45)  # 15 s left: not handed out
    with pytest.raises(ProviderError) as caught:
        cache.token()
    assert caught.value.error_class is ErrorClass.AUTH
    assert "invalid_grant: Bad" in caught.value.message
    assert len(endpoint.grants) == 1


def test_after_the_cooldown_the_refresh_is_tried_again(endpoint):
    endpoint.status, endpoint.page = 400, INVALID_GRANT
    cache = AccessTokenCache(lambda: user_credentials(endpoint.url, token=None), cooldown_s=0.3)
    for _ in range(3):
        with pytest.raises(ProviderError):
            cache.token()
    assert len(endpoint.grants) == 1
    time.sleep(0.4)
    endpoint.status = 200
    assert cache.token() == "minted-2"
    assert cache.token() == "minted-2"


def test_twenty_threads_share_one_failing_refresh_and_fail_fast(endpoint):
    endpoint.status, endpoint.page, endpoint.delay_s = 400, INVALID_GRANT, 0.5
    cache = AccessTokenCache(lambda: user_credentials(endpoint.url, token=None))
    started = time.monotonic()
    outcomes, slowest = in_threads(20, cache.token)
    assert len(endpoint.grants) == 1  # one attempt; the 19 others got its error
    assert {type(o).__name__ for o in outcomes} == {"AuthFailed"}
    assert len({o.message for o in outcomes}) == 1
    assert slowest < 3.0
    assert time.monotonic() - started < 3.0
    outcomes, slowest = in_threads(20, cache.token)  # within the cooldown: nobody tries again
    assert len(endpoint.grants) == 1
    assert {o.error_class for o in outcomes} == {ErrorClass.AUTH}
    assert slowest < 0.2


def test_a_token_endpoint_that_is_down_fails_every_waiter_fast_as_a_connection_error():
    with ServerThread(TokenServer()) as server:
        down = f"{server.url}/token"  # nothing listens here once it stops
    cache = AccessTokenCache(lambda: user_credentials(down, token=None))
    outcomes, slowest = in_threads(20, cache.token)
    assert {o.error_class for o in outcomes} == {ErrorClass.CONNECTION}
    assert slowest < 3.0


def test_waiting_for_a_hung_refresh_is_bounded(endpoint):
    endpoint.delay_s = 1.5
    cache = AccessTokenCache(lambda: user_credentials(endpoint.url, token=None))
    refreshed = []
    refresher = threading.Thread(target=lambda: refreshed.append(cache.token()))
    refresher.start()
    eventually(lambda: endpoint.grants, timeout=5, interval=0.01, what="the refresh to start")
    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        cache.token(wait_s=0.2)
    assert caught.value.error_class is ErrorClass.TIMEOUT
    assert 0.15 < time.monotonic() - started < 1.0
    refresher.join(5)
    assert refreshed == ["minted-1"]
    assert cache.token(wait_s=0.2) == "minted-1"


def test_a_failing_default_credentials_lookup_runs_once_per_cooldown(monkeypatch, tmp_path):
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "gone.json"))
    default = credentials_loader(None)  # google.auth.default(): fails on the missing file
    loads = []

    def load():
        loads.append(1)
        time.sleep(0.2)
        return default()

    cache = AccessTokenCache(load)
    outcomes, slowest = in_threads(20, cache.token)
    assert len(loads) == 1
    assert {o.error_class for o in outcomes} == {ErrorClass.AUTH}
    assert "gone.json" in outcomes[0].message
    assert slowest < 3.0


def test_metadata_server_transport_errors_are_connection_failures(monkeypatch):
    """Compute Engine credentials raise RefreshError (retryable=False) from a TransportError
    when the metadata server fails: transient, not the credential's fault."""
    app = MetadataServer(token_status=502)
    with ServerThread(app) as server:
        monkeypatch.setattr(_metadata, "_GCE_METADATA_HOST", f"{server.host}:{server.port}")
        cache = AccessTokenCache(compute_engine.Credentials)
        with pytest.raises(ProviderError) as caught:
            cache.token()
    assert caught.value.error_class is ErrorClass.CONNECTION
    assert "metadata" in caught.value.message
    assert app.token_requests == 1
    assert len(caught.value.message) <= MAX_ERROR_MESSAGE + 50


def test_a_metadata_server_that_answers_gives_its_token(monkeypatch):
    app = MetadataServer(token_status=200)
    with ServerThread(app) as server:
        monkeypatch.setattr(_metadata, "_GCE_METADATA_HOST", f"{server.host}:{server.port}")
        cache = AccessTokenCache(compute_engine.Credentials)
        assert cache.token() == "ya29.metadata"


class MetadataServer:
    """The Compute Engine metadata server's service-account endpoints."""

    def __init__(self, *, token_status):
        self.token_status = token_status
        self.token_requests = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["path"].endswith("/token"):
            self.token_requests += 1
            if self.token_status == 200:
                status, body = 200, {"access_token": "ya29.metadata", "expires_in": 3600}
            else:
                status, body = self.token_status, {"error": "<html>Bad Gateway</html>" * 100}
        else:
            status, body = 200, {"email": "sa@proj.iam.gserviceaccount.com", "scopes": []}
        headers = [(b"content-type", b"application/json"), (b"metadata-flavor", b"Google")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})


# --- credential files -------------------------------------------------------------------------


def authorized_user_file(path, token_uri, **extra):
    """What ``gcloud auth application-default login`` writes."""
    info = {
        "type": "authorized_user",
        "client_id": "client-1.apps.googleusercontent.com",
        "client_secret": "d-secret",
        "refresh_token": "1//refresh-token",
        "token_uri": token_uri,
        **extra,
    }
    path.write_text(json.dumps(info))
    return str(path)


def loaded_then_pointed_at(path, token_uri):
    """Our loader's credentials, sent to ``token_uri`` (google-auth always sets gcloud user
    credentials' token endpoint to Google's own, whatever the file says)."""
    load = credentials_loader(path)

    def pointed():
        credentials = load()
        assert isinstance(credentials, Credentials)  # google.oauth2's user credentials
        return credentials.with_token_uri(token_uri)

    return pointed


def test_an_authorized_user_file_loads_and_refreshes(endpoint, tmp_path, monkeypatch):
    path = authorized_user_file(tmp_path / "adc.json", endpoint.url, quota_project_id="bill-9")
    cache = AccessTokenCache(loaded_then_pointed_at(path, endpoint.url))
    assert cache.token() == "minted-1"
    assert endpoint.grants[0]["grant_type"] == "refresh_token"
    assert endpoint.grants[0]["refresh_token"] == "1//refresh-token"
    assert cache.quota_project_id == "bill-9"  # the file's own quota project
    monkeypatch.setenv("GOOGLE_CLOUD_QUOTA_PROJECT", "bill-env")
    overridden = AccessTokenCache(loaded_then_pointed_at(path, endpoint.url))
    overridden.token()
    assert overridden.quota_project_id == "bill-env"  # the variable wins, as in google-auth


def test_a_service_account_file_still_loads_and_takes_the_quota_project_variable(
    endpoint, tmp_path, monkeypatch
):
    monkeypatch.setenv("GOOGLE_CLOUD_QUOTA_PROJECT", "bill-3")
    key_file = ServiceAccountKey.generate().write(tmp_path / "sa.json", endpoint.url)
    cache = AccessTokenCache(credentials_loader(str(key_file)))
    assert cache.token() == "minted-1"
    assert endpoint.grants[0]["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert cache.quota_project_id == "bill-3"


def test_a_file_of_an_unknown_type_is_auth(tmp_path):
    path = tmp_path / "odd.json"
    path.write_text(json.dumps({"type": "something_else"}))
    with pytest.raises(ProviderError) as caught:
        AccessTokenCache(credentials_loader(str(path))).token()
    assert caught.value.error_class is ErrorClass.AUTH


# --- what a refresh error may say -------------------------------------------------------------


def test_a_proxy_page_is_clipped_and_the_signed_assertion_never_appears(endpoint, tmp_path):
    """A proxy that echoes the request into a long HTML page: the error keeps a short, one-line
    excerpt, without the signed JWT assertion that was posted."""

    def page(form):
        echoed = "&".join(f"{k}={v}" for k, v in form.items())
        return f"<html><body><h1>403 Forbidden</h1><p>{echoed}</p>{'<p>x</p>' * 5000}".encode()

    endpoint.status, endpoint.page, endpoint.content_type = 403, page, "text/html"
    key_file = ServiceAccountKey.generate().write(tmp_path / "sa.json", endpoint.url)
    with pytest.raises(ProviderError) as caught:
        AccessTokenCache(credentials_loader(str(key_file))).token()
    assertion = endpoint.grants[0]["assertion"]
    message = caught.value.message
    assert caught.value.error_class is ErrorClass.AUTH
    assert "403 Forbidden" in message
    assert "\n" not in message
    assert len(message) <= MAX_ERROR_MESSAGE + 50
    assert assertion not in message
    assert assertion.split(".")[2] not in message  # not even the signature
    assert "eyJ" not in message


def test_describe_cuts_out_keys_tokens_and_assertions():
    from google.auth.exceptions import RefreshError

    pem = "-----BEGIN PRIVATE KEY-----\nMIIEv" + "A" * 200 + "\n-----END PRIVATE KEY-----\n"
    cut_short = "-----BEGIN RSA PRIVATE KEY-----\nMIIEv" + "B" * 100
    text = (
        f'invalid_grant: {{"private_key": "{pem}"}} assertion=eyJhbGciOi.eyJpc3Mi.c2ln '
        f'"access_token": "ya29.a0Af-secret" bare ya29.other-secret 1//refresh-secret '
        f"client_secret=d-secret {cut_short}"
    )
    described = describe(RefreshError(text, {"error": "invalid_grant"}))
    assert described.startswith("invalid_grant:")
    for secret in ("MIIEv", "eyJ", "c2ln", "ya29.", "-secret", "1//"):
        assert secret not in described
    assert len(describe(RefreshError("x" * 10_000))) == MAX_ERROR_MESSAGE
