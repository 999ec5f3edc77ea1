"""A Flask app that hands its LLM calls to turnout, on the sync client.

    flask --app examples.flask_app run      # REDIS_URL, TURNOUT_CONFIG (, TURNOUT_NAMESPACE)

POST /summarise  {"text": ...}  waits for the summary: 200, or 400 / 502 / 504

The view blocks its thread only while it waits on Redis for the job to finish; the provider
call, its retries and its failover run on a worker. A request that times out here leaves its job
running: the 504 carries the job id (``turnout show JOB_ID``).
"""

from __future__ import annotations

import atexit
import functools
from typing import Any

from flask import Flask, request

from producers import Client, CompletionResult, InvalidRequest, JobFailed, JobTimeout, SubmitError

#: How long a request waits for its summary before answering 504 (the job runs on regardless).
WAIT_S = 30.0

app = Flask(__name__)


@functools.cache
def turnout() -> Client:
    """One Client per process, made on first use: after a pre-forking server (gunicorn) forks,
    never before, since Redis connections do not survive a fork. Thread-safe."""
    client = Client()  # REDIS_URL, TURNOUT_CONFIG from the environment
    atexit.register(client.close)
    return client


def summary(result: CompletionResult) -> dict[str, Any]:
    return {
        "job_id": result.job_id,
        "state": result.state.value,
        "text": result.text,
        "deployment": result.deployment,
        "error_class": result.error.error_class.value if result.error else None,
    }


@app.post("/summarise")
def summarise() -> dict[str, Any] | tuple[dict[str, Any], int]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return {"detail": 'send a JSON object: {"text": ...}'}, 400
    completion = {  # a plain dict: turnout validates it, InvalidRequest says what is wrong
        "messages": [
            {"role": "system", "content": "Summarise the user's text in one sentence."},
            {"role": "user", "content": body.get("text")},
        ],
        "max_tokens": body.get("max_tokens", 256),
    }
    return summary(turnout().complete(completion, policy="default", timeout=WAIT_S))


@app.errorhandler(InvalidRequest)
def invalid_request(exc: InvalidRequest) -> tuple[dict[str, Any], int]:
    return {"detail": str(exc)}, 400


@app.errorhandler(JobFailed)
def job_failed(exc: JobFailed) -> tuple[dict[str, Any], int]:
    return {**summary(exc.result), "detail": str(exc)}, 502


@app.errorhandler(JobTimeout)
def job_timeout(exc: JobTimeout) -> tuple[dict[str, Any], int]:
    return {"detail": str(exc), "job_id": exc.job_id}, 504


@app.errorhandler(SubmitError)
def submit_error(exc: SubmitError) -> tuple[dict[str, Any], int]:
    return {"detail": str(exc)}, 503
