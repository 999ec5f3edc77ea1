"""One missing key does not stop a worker: the route is out of rotation, and says why."""

from __future__ import annotations

import json

from producers.client import Client
from routing.models import JobState
from tests.integration.conftest import run_cli
from tests.integration.harness import Sim, Worker, settings_for, stack_env, write_config


def test_a_worker_missing_one_key_starts_and_routes_around_it(redis_url, namespace, tmp_path):
    primary = Sim("primary", key="sim-primary-key-123456789")
    secondary = Sim("secondary", key="sim-secondary-key-123456789")
    config = write_config(tmp_path / "turnout.yaml", [primary, secondary])
    env = stack_env(redis_url, namespace, config, [secondary])  # SIM_KEY_PRIMARY unset
    worker = Worker(env, tmp_path / "worker.log")
    client = Client(settings=settings_for(env))
    try:
        worker.start()
        log = worker.log()
        assert "route primary is out of rotation: unusable: SIM_KEY_PRIMARY is not set" in log
        assert "secondary is out of rotation" not in log

        result = client.submit("hello").wait(timeout=30)
        assert result.state is JobState.SUCCEEDED
        assert [(a.deployment, a.outcome, a.reason) for a in result.attempts] == [
            ("primary", "skipped", "missing_credential"),
            ("secondary", "ok", None),
        ]
        assert result.attempts[0].message == "unusable: SIM_KEY_PRIMARY is not set"
        assert primary.chat_requests() == 0

        shown = run_cli(["status", "--json"], env)
        assert shown.returncode == 0, shown.stderr
        routes = {row["id"]: row for row in json.loads(shown.stdout)["deployments"]}
        assert routes["primary"]["state"] == "closed", "its breaker never moved"
        assert routes["primary"]["health"]["state"] == "unusable"
        assert routes["primary"]["health"]["detail"] == "unusable: SIM_KEY_PRIMARY is not set"
        assert routes["secondary"]["health"]["state"] != "unusable"

        listed = run_cli(["providers", "--json"], env)
        assert listed.returncode == 0, listed.stderr
        assert json.loads(listed.stdout)["unset"] == [
            {
                "deployment": "primary",
                "provider": "openai",
                "path": "deployments[0].api_key_env",
                "variable": "SIM_KEY_PRIMARY",
            }
        ]
    finally:
        client.close()
        worker.stop()
        primary.stop()
        secondary.stop()
