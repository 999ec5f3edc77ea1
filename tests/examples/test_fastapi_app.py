"""examples/fastapi_app.py through a real worker: served, refused, failed, timed out, polled."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from examples import fastapi_app
from tests.helpers import eventually


@pytest.fixture
def http(stack_env):
    with TestClient(fastapi_app.app) as client:  # runs the lifespan: the app's one Client
        yield client


def poll(http: TestClient, job_id: str, timeout_s: float = 10) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        polled = http.get(f"/summaries/{job_id}")
        assert polled.status_code == 200, polled.text
        body: dict[str, Any] = polled.json()
        return body if body["state"] in ("succeeded", "failed") else None

    return eventually(finished, timeout=timeout_s, what=f"job {job_id} to finish")


def test_a_summary_is_served_by_the_worker_from_the_primary(http):
    response = http.post("/summarise", json={"text": "The cat sat on the mat."})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["state"] == "succeeded"
    assert body["deployment"] == "primary"
    assert body["text"].startswith("primary (sim-model) answers ")
    assert body["text"].endswith(": The cat sat on the mat.")
    assert poll(http, body["job_id"]) == body


@pytest.mark.parametrize(
    ("payload", "complaint"),
    [
        ({"text": ""}, "messages.1: Value error, message content is empty"),
        ({"text": "   "}, "message content is blank"),
        ({"text": "hi", "max_tokens": 0}, "max_tokens"),
    ],
)
def test_a_bad_request_is_400_before_anything_is_enqueued(stack_env, http, payload, complaint):
    jobs_before = set(stack_env.job_keys())
    response = http.post("/summarise", json=payload)
    assert response.status_code == 400
    assert complaint in response.json()["detail"]
    assert set(stack_env.job_keys()) == jobs_before
    assert stack_env.queue_length() == 0
    assert stack_env.provider("primary").chat_requests() == 0


def test_a_failed_job_is_502_with_its_error_class(stack_env, http):
    stack_env.faults("primary", fail_rate=1.0, fail_status=400)
    response = http.post("/summarise", json={"text": "Refused everywhere."})
    assert response.status_code == 502
    body = response.json()
    assert (body["state"], body["error_class"]) == ("failed", "bad_request")
    assert f"job {body['job_id']} failed: bad_request" in body["detail"]
    assert (
        stack_env.provider("secondary").chat_requests() == 0
    )  # a bad request fails the job, no failover


def test_a_slow_job_is_504_with_its_id_and_still_finishes(stack_env, http, monkeypatch):
    monkeypatch.setattr(fastapi_app, "WAIT_S", 0.2)
    stack_env.faults("primary", latency_ms=800)
    response = http.post("/summarise", json={"text": "Take your time."})
    assert response.status_code == 504
    job_id = response.json()["job_id"]
    assert response.json()["poll"] == f"/summaries/{job_id}"
    finished = poll(http, job_id)
    assert (finished["state"], finished["deployment"]) == ("succeeded", "primary")


def test_fire_then_poll(http):
    started = http.post("/summaries", json={"text": "Fire and forget, then look."})
    assert started.status_code == 202
    body = started.json()
    assert body["state"] == "queued"
    finished = poll(http, body["job_id"])
    assert finished["job_id"] == body["job_id"]
    assert finished["deployment"] == "primary"
    assert finished["text"].endswith(": Fire and forget, then look.")


def test_fire_refuses_a_bad_request_and_poll_knows_no_stranger(http):
    assert http.post("/summaries", json={"text": ""}).status_code == 400
    missing = http.get("/summaries/no-such-job")
    assert missing.status_code == 404
    assert "no job no-such-job" in missing.json()["detail"]
