"""A 404 that is not the provider's API is a configuration error naming the URL, never a key."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from routing.errors import ErrorClass, Misconfigured
from routing.routes import Skip
from tests.routing.test_fleet_routers import route
from workers.execution import _heals
from workers.http import HttpCall, HttpReply
from workers.providers.wrong_address import check_address, shown_url

CALL = HttpCall("POST", "https://gateway.example:8443/openai/v1/chat/completions", {}, b"{}")


def reply(status, body):
    return HttpReply(
        status, {}, body if isinstance(body, bytes) else json.dumps(body).encode(), 0.0
    )


@pytest.mark.parametrize(
    "body",
    [
        b"<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1></body></html>",
        b"404 page not found",
        b"",
        b"[]",
        {"error": {"message": "Invalid URL (POST /openai/v1/chat/completions)", "code": None}},
    ],
)
def test_a_404_in_no_providers_shape_is_misconfigured_and_names_the_url(body):
    with pytest.raises(Misconfigured) as caught:
        check_address(CALL, reply(404, body))
    error = caught.value
    assert error.error_class is ErrorClass.CONFIGURATION
    assert error.message.startswith(
        "404 at https://gateway.example:8443/openai/v1/chat/completions:"
    )
    assert error.open_reason == f"misconfigured: {error.message}"


@pytest.mark.parametrize(
    "body",
    [
        {"error": {"message": "The model `gpt-x` does not exist", "code": "model_not_found"}},
        {"error": "model 'llama9' not found, try pulling it first"},
        {"error": {"code": 404, "message": "models/x is not found", "status": "NOT_FOUND"}},
        {"message": "Could not resolve the foundation model"},
    ],
)
def test_a_providers_own_404_is_left_to_its_adapter(body):
    check_address(CALL, reply(404, body))


def test_other_statuses_are_left_to_the_adapter():
    check_address(CALL, reply(502, b"<html>bad gateway</html>"))


def test_the_url_shown_has_no_query_string_or_userinfo():
    url = "https://user:s3cret@host.example/v1beta/models/m:generateContent?key=AIzaSecret"
    shown = shown_url(url)
    assert shown == "https://host.example/v1beta/models/m:generateContent"
    call = HttpCall("POST", url, {}, b"")
    with pytest.raises(Misconfigured) as caught:
        check_address(call, reply(404, b"<html></html>"))
    assert "s3cret" not in caught.value.message
    assert "AIza" not in caught.value.message


def test_a_job_does_not_wait_for_a_route_opened_on_a_wrong_address():
    job: Any = SimpleNamespace(will_not_heal={})
    wrong = Skip(
        route(), "open", retry_at=1e12, why="misconfigured: 404 at http://gw/v1/chat/completions"
    )
    failing = Skip(route(), "open", retry_at=1e12, why="5 consecutive failures")
    assert not _heals(job, wrong)
    assert _heals(job, failing)


def test_connection_errors_name_the_host_and_the_port_used():
    from workers.http import _where

    assert _where("https://api.groq.com/openai/v1/chat/completions") == "api.groq.com:443"
    assert _where("http://127.0.0.1:11434/api/chat?key=secret") == "127.0.0.1:11434"
    assert _where("http://gpu-box/v1") == "gpu-box:80"
