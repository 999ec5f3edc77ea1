"""Whose a job is in ``turnout serve``: admin tokens, the reading rule, and the app on a real
Redis without a worker (tests/integration/test_serve.py runs the same through a served process)."""

from __future__ import annotations

import secrets
import uuid

import pytest
from fastapi.testclient import TestClient

from producers.client import Client
from producers.http_front.app import create_app
from producers.http_front.auth import BearerTokens, caller_of
from producers.http_front.ownership import may_read
from producers.settings import ProducerSettings
from routing.config import parse_config
from routing.errors import ConfigError

CONFIG = parse_config(
    {
        "deployments": [{"id": "openai-main", "provider": "openai", "model": "gpt-4o-mini"}],
        "policies": {"default": {"targets": ["openai-main"]}},
    },
    source="test.yaml",
)
HELLO = {"model": "default", "messages": [{"role": "user", "content": "hi"}]}


def settings(**env: str) -> ProducerSettings:
    # TestClient names its host "testserver": allowed here, as an operator would list a name.
    return ProducerSettings.model_validate(
        {
            "TURNOUT_NAMESPACE": f"t-{secrets.token_hex(5)}",
            "TURNOUT_SERVE_ALLOWED_HOSTS": "testserver",
            **env,
        }
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_admin_tokens_are_accepted_and_known_as_admins():
    user, admin = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    tokens = BearerTokens.from_settings(
        settings(TURNOUT_API_TOKENS=user, TURNOUT_ADMIN_TOKENS=admin)
    )
    assert tokens is not None
    assert len(tokens) == 2
    assert tokens.accepts(user.encode())
    assert tokens.accepts(admin.encode())
    assert tokens.admins == {caller_of(admin.encode())}
    alone = BearerTokens.from_settings(settings(TURNOUT_ADMIN_TOKENS=admin))
    assert alone is not None, "admin tokens alone turn auth on"
    assert alone.accepts(admin.encode())


def test_a_weak_admin_token_is_refused_naming_its_setting():
    with pytest.raises(ConfigError, match=r"^TURNOUT_ADMIN_TOKENS: token 1 of 1 has 5 char"):
        BearerTokens.from_settings(settings(TURNOUT_ADMIN_TOKENS="short"))


def test_no_auth_with_admin_tokens_set_is_refused(redis_url):
    both = settings(REDIS_URL=redis_url, TURNOUT_ADMIN_TOKENS=secrets.token_urlsafe(32))
    with (
        Client(settings=both, config=CONFIG) as client,
        pytest.raises(ConfigError, match="--no-auth was given"),
    ):
        create_app(client, both, no_auth=True)


@pytest.mark.parametrize(
    ("caller", "owner", "readable"),
    [
        ("a", "a", True),
        ("b", "a", False),
        ("b", None, False),
        (None, "a", False),
        ("admin", "a", True),
        ("admin", None, True),
        ("a", "ä", False),  # an owner the Python client gave: compared, never a TypeError
    ],
)
def test_a_caller_reads_its_own_jobs_and_an_admin_every_job(caller, owner, readable):
    admin_token = "admin-" + "x" * 16
    tokens = BearerTokens(["t" * 16], [admin_token])
    if caller == "admin":
        caller = caller_of(admin_token.encode())
    assert may_read(caller, owner, tokens) is readable
    assert may_read(caller, owner, None), "without auth every job is readable"


def test_the_app_answers_another_callers_job_as_a_missing_one(redis_url):
    first, second, admin = (secrets.token_urlsafe(32) for _ in range(3))
    configured = settings(
        REDIS_URL=redis_url, TURNOUT_API_TOKENS=f"{first},{second}", TURNOUT_ADMIN_TOKENS=admin
    )
    client = Client(settings=configured, config=CONFIG)
    with TestClient(create_app(client, configured)) as http:
        accepted = http.post("/v1/jobs", json=HELLO, headers=bearer(first))
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["id"]
        assert client.job(job_id).read().owner == caller_of(first.encode())

        assert http.get(f"/v1/jobs/{job_id}", headers=bearer(first)).status_code == 200
        assert http.get(f"/v1/jobs/{job_id}", headers=bearer(admin)).status_code == 200
        theirs = http.get(f"/v1/jobs/{job_id}", headers=bearer(second))
        nobody = str(uuid.uuid4())
        missing = http.get(f"/v1/jobs/{nobody}", headers=bearer(second))
    assert theirs.status_code == missing.status_code == 404
    assert theirs.text.replace(job_id, nobody) == missing.text
