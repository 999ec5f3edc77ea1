"""``turnout status`` and ``turnout breaker`` as an operator runs them, against a real worker."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from routing.errors import JobFailed
from routing.models import CompletionRequest, JobState
from tests.integration.conftest import make_stack, run_cli, tear_down


@pytest.fixture
def fresh(redis_url, tmp_path):
    """A stack of its own: today's counts start at zero."""
    stack = make_stack(redis_url, tmp_path, worker=True)
    yield stack
    tear_down(stack)


def status(env: dict[str, str]) -> dict[str, Any]:
    shown = run_cli(["status", "--json"], env)
    assert shown.returncode == 0, shown.stderr
    view: dict[str, Any] = json.loads(shown.stdout)
    return view


def test_status_counts_what_ran_and_the_breaker_commands_move_the_fleet(fresh):
    with fresh.client() as client:
        served = [
            client.complete(CompletionRequest.from_prompt(f"job {n}", max_tokens=16), timeout=30)
            for n in range(3)
        ]
        fresh.primary.set_faults(fail_rate=1.0, fail_status=400)
        with pytest.raises(JobFailed):
            client.complete("a bad request", timeout=30)
        fresh.primary.reset()

        view = status(fresh.env)
        routes = {row["id"]: row for row in view["deployments"]}
        primary = routes["primary"]
        assert (primary["state"], primary["in_flight"]) == ("closed", 0)
        assert primary["recent"]["calls"] == 4
        assert primary["recent"]["errors"] == 1
        assert primary["recent"]["error_rate"] == pytest.approx(0.25)
        assert 0 < primary["recent"]["p50_ms"] <= primary["recent"]["p95_ms"]
        usage = [r.usage for r in served]
        assert primary["today"]["calls"] == 4
        assert primary["today"]["prompt_tokens"] == sum(u.prompt_tokens for u in usage)
        assert primary["today"]["completion_tokens"] == sum(u.completion_tokens for u in usage)
        assert routes["secondary"]["today"]["calls"] == 0
        assert view["jobs"] == {
            "queued": 0,
            "running": 0,
            "created": 4,
            "succeeded": 3,
            "failed": 1,
        }
        bulk = {f"bulk-{slot}": 0 for slot in range(8)}  # the bulk lane's (routing.lanes)
        assert view["queues"] == {"jobs": 0, "control": 0, **bulk}

        tables = run_cli(["status"], fresh.env)
        assert tables.returncode == 0, tables.stderr
        assert "primary" in tables.stdout
        assert "closed" in tables.stdout
        assert "3 / 1" in tables.stdout, "today: created / ok / failed"

        opened = run_cli(["breaker", "open", "primary", "--for", "60"], fresh.env)
        assert opened.returncode == 0, opened.stderr
        assert status(fresh.env)["deployments"][0]["state"] == "open"
        result = client.complete("while the primary is out", timeout=30)
        assert (result.state, result.deployment) == (JobState.SUCCEEDED, "secondary")
        assert next((a.deployment, a.outcome) for a in result.attempts) == ("primary", "skipped")

        closed = run_cli(["breaker", "close", "primary"], fresh.env)
        assert closed.returncode == 0, closed.stderr
        assert status(fresh.env)["deployments"][0]["state"] == "closed"
        assert client.complete("back", timeout=30).deployment == "primary"

        assert run_cli(["breaker", "open", "primary"], fresh.env).returncode == 0
        assert run_cli(["breaker", "reset", "primary"], fresh.env).returncode == 0
        after = status(fresh.env)["deployments"][0]
        assert (after["state"], after["reason"]) == ("closed", None)
        assert after["today"]["calls"] == 5, "a reset keeps the statistics"

    unknown = run_cli(["breaker", "close", "nope"], fresh.env)
    assert unknown.returncode == 2
    assert "unknown route 'nope'" in unknown.stderr
    assert "primary" in unknown.stderr
    started = time.monotonic()
    down = run_cli(["status", "--json"], {**fresh.env, "REDIS_URL": "redis://127.0.0.1:1/0"})
    assert (down.returncode, "Redis unreachable" in down.stderr) == (1, True), down.stderr
    assert time.monotonic() - started < 15


@pytest.fixture
def idle_on_rabbitmq(redis_url, tmp_path):
    """No worker, messages on RabbitMQ: whatever is submitted stays waiting there."""
    stack = make_stack(redis_url, tmp_path, worker=False, broker="rabbitmq")
    yield stack
    tear_down(stack)


def test_status_counts_the_messages_waiting_on_rabbitmq_and_never_shows_its_password(
    idle_on_rabbitmq,
):
    stack = idle_on_rabbitmq
    with stack.client() as client:
        for n in range(3):
            client.submit(f"waiting {n}")
    view = status(stack.env)
    assert view["queues"] == {"jobs": 3, "control": 0}, "RabbitMQ's count, not Redis's"
    assert view["jobs"]["queued"] == 3
    assert stack.queue_length() == 3

    secret = "not-the-password-x7Q2"
    wrong = {**stack.env, "TURNOUT_BROKER_URL": f"amqp://guest:{secret}@127.0.0.1:5672//"}
    refused = run_cli(["status"], wrong)
    assert refused.returncode == 1
    assert "RabbitMQ unreachable" in refused.stdout + refused.stderr
    assert secret not in refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr
