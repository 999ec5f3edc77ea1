"""examples/flask_app.py through a real worker: served, refused, failed, timed out."""

from __future__ import annotations

import pytest

from examples import flask_app
from producers import Client


@pytest.fixture
def http(stack_env):
    """The app's test client; the process-wide turnout Client is made afresh for the stack."""
    flask_app.turnout.cache_clear()
    yield flask_app.app.test_client()
    if flask_app.turnout.cache_info().currsize:
        flask_app.turnout().close()
    flask_app.turnout.cache_clear()


def test_a_summary_is_served_by_the_worker_from_the_primary(stack_env, http):
    response = http.post("/summarise", json={"text": "The cat sat on the mat."})
    assert response.status_code == 200, response.text
    body = response.get_json()
    assert body["state"] == "succeeded"
    assert body["deployment"] == "primary"
    assert body["text"].startswith("primary (sim-model) answers ")
    assert body["text"].endswith(": The cat sat on the mat.")
    with Client(settings=stack_env.settings) as client:
        assert client.job(body["job_id"]).result().text == body["text"]


def test_one_client_serves_every_request(http):
    for text in ("first", "second"):
        assert http.post("/summarise", json={"text": text}).status_code == 200
    assert flask_app.turnout.cache_info() == (1, 1, None, 1)  # (hits, misses, maxsize, size)


@pytest.mark.parametrize(
    ("payload", "complaint"),
    [
        ({"text": ""}, "messages.1: Value error, message content is empty"),
        ({}, "messages.1: Value error, message content is empty"),
        ({"text": "hi", "max_tokens": -5}, "max_tokens"),
        (["not", "an", "object"], "send a JSON object"),
    ],
)
def test_a_bad_request_is_400_before_anything_is_enqueued(stack_env, http, payload, complaint):
    jobs_before = set(stack_env.job_keys())
    response = http.post("/summarise", json=payload)
    assert response.status_code == 400
    assert complaint in response.get_json()["detail"]
    assert set(stack_env.job_keys()) == jobs_before
    assert stack_env.queue_length() == 0
    assert stack_env.provider("primary").chat_requests() == 0


def test_a_failed_job_is_502_with_its_error_class(stack_env, http):
    stack_env.faults("primary", fail_rate=1.0, fail_status=400)
    response = http.post("/summarise", json={"text": "Refused everywhere."})
    assert response.status_code == 502
    body = response.get_json()
    assert (body["state"], body["error_class"]) == ("failed", "bad_request")
    assert f"job {body['job_id']} failed: bad_request" in body["detail"]
    assert (
        stack_env.provider("secondary").chat_requests() == 0
    )  # a bad request fails the job, no failover


def test_a_slow_job_is_504_with_its_id_and_still_finishes(stack_env, http, monkeypatch):
    monkeypatch.setattr(flask_app, "WAIT_S", 0.2)
    stack_env.faults("primary", latency_ms=800)
    response = http.post("/summarise", json={"text": "Take your time."})
    assert response.status_code == 504
    job_id = response.get_json()["job_id"]
    with Client(settings=stack_env.settings) as client:
        finished = client.job(job_id).wait(timeout=10)
    assert (finished.state, finished.deployment) == ("succeeded", "primary")
