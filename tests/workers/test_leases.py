"""The lease keeper against a real Redis: a lease its own run just ended (the finish went out
between the renewal's snapshot and the renewal) is no warning; a lease another worker took
over is one."""

from __future__ import annotations

import json
import logging

import pytest

from routing.config import parse_config
from routing.jobstore import JobStore, redis_client
from routing.keys import Keys
from routing.local_router import LocalRouter
from routing.models import CompletionRequest, JobState, RoutingPolicy
from routing.planning import routes_of
from workers.http import HttpReply
from workers.leases import LeaseKeeper
from workers.providers.registry import build_adapter
from workers.redaction import Redactor
from workers.runtime import WorkerRuntime
from workers.settings import WorkerSettings

POLICY = RoutingPolicy(targets=["local"])
CONFIG = parse_config({"deployments": [{"id": "local", "provider": "ollama", "model": "m"}]})


@pytest.fixture
def store(redis_url, namespace):
    client = redis_client(redis_url)
    yield JobStore(client, Keys(namespace), ttl_s=600)
    client.close()


def lease_records(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "turnout.leases"]


def test_a_lease_the_runs_own_finish_ended_is_not_a_warning(store, caplog):
    store.create("job-1", CompletionRequest.from_prompt("hi"), POLICY)
    store.claim("job-1", "mine", lease_s=5, max_runs=3)
    keeper = LeaseKeeper(store, lease_s=5)
    keeper.hold("job-1", "mine", for_s=60)
    with caplog.at_level(logging.DEBUG, logger="turnout.leases"):
        keeper.ending("job-1")  # what the runtime says before its finish
        assert store.finish("job-1", JobState.SUCCEEDED, {"text": "hi"}, [], token="mine")
        keeper.renew_now()  # the renewal lands before the run's release
    keeper.stop()
    assert lease_records(caplog) == [
        (logging.DEBUG, "the lease on job job-1 ended with its run (finished or rescheduled)")
    ]
    assert keeper.held() == {}, "no longer renewed"


def test_a_lease_another_worker_took_over_is_a_warning(store, caplog):
    store.create("job-1", CompletionRequest.from_prompt("hi"), POLICY)
    store.claim("job-1", "mine", lease_s=5, max_runs=3)
    keeper = LeaseKeeper(store, lease_s=5)
    keeper.hold("job-1", "mine", for_s=60)
    store.redis.hset(store.keys.job("job-1"), "lease_until", 0)  # this worker stalled
    assert store.claim("job-1", "theirs", lease_s=5, max_runs=3).status == "claimed"
    with caplog.at_level(logging.DEBUG, logger="turnout.leases"):
        keeper.renew_now()
    keeper.stop()
    assert lease_records(caplog) == [
        (logging.WARNING, "lost the lease on job job-1 (finished or taken over)")
    ]
    assert keeper.held() == {}


class OllamaAnswers:
    """Answers every call as an ollama server would, without one."""

    def send(self, call, *, timeout_s):
        body = {
            "model": "m",
            "message": {"role": "assistant", "content": "hi"},
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": 3,
            "eval_count": 1,
        }
        return HttpReply(200, {}, json.dumps(body).encode(), 0.01)

    def close(self):
        pass


class RenewedRightAfterTheFinish(JobStore):
    """A store whose every finish is followed, before the run gets its reply, by the lease
    keeper's renewal: the race, made certain."""

    keeper: LeaseKeeper | None = None

    def finish_with(self, *args, **kwargs):
        outcome = super().finish_with(*args, **kwargs)
        assert self.keeper is not None
        self.keeper.renew_now()
        return outcome


def test_a_worker_finishing_a_job_while_its_lease_is_renewed_logs_no_warning(
    redis_url, namespace, caplog
):
    client = redis_client(redis_url)
    store = RenewedRightAfterTheFinish(client, Keys(namespace), ttl_s=600)
    settings = WorkerSettings()
    (route,) = routes_of(CONFIG.deployments["local"], CONFIG)
    runtime = WorkerRuntime(
        settings,
        CONFIG,
        store=store,
        transport=OllamaAnswers(),
        adapters={route.id: build_adapter(route.deployment, settings)},
        redactor=Redactor(),
        router=LocalRouter(),
    )
    store.keeper = runtime.leases
    try:
        store.create("job-1", CompletionRequest.from_prompt("hi"), POLICY)
        with caplog.at_level(logging.DEBUG, logger="turnout.leases"):
            report = runtime.run_job("job-1")
        assert report.summary["state"] == "succeeded"
        assert [level for level, _ in lease_records(caplog)] == [logging.DEBUG]
    finally:
        runtime.close()
        client.close()
