"""A claim whose reply was lost (Redis went away after applying it) is tried again with the
same lease token, so the job runs now, once, instead of sitting leased to nobody."""

from __future__ import annotations

from typing import Any

import redis

from routing.fallback_router import FallbackRouter
from routing.fleet_router import FleetRouter
from routing.jobstore import Claim, JobStore
from routing.keys import Keys
from routing.local_router import LocalRouter
from routing.models import CompletionRequest, JobState, RoutingPolicy
from routing.planning import routes_of
from tests.workers.test_runtime_round_trips import CONFIG, OllamaAnswers
from workers.providers.registry import build_adapter
from workers.redaction import Redactor
from workers.runtime import WorkerRuntime
from workers.settings import WorkerSettings


class ReplyLostOnce(JobStore):
    """The first claim is applied in Redis, then its reply is lost with the connection."""

    tokens: list[str]

    def claim(self, job_id: str, token: str, **limits: Any) -> Claim:
        claim = super().claim(job_id, token, **limits)
        self.tokens.append(token)
        if len(self.tokens) == 1:
            raise redis.ConnectionError("Connection closed by server.")
        return claim


class CountedAnswers(OllamaAnswers):
    calls = 0

    def send(self, call: Any, *, timeout_s: float) -> Any:
        CountedAnswers.calls += 1
        return super().send(call, timeout_s=timeout_s)


def test_a_claim_whose_reply_was_lost_is_tried_again_with_its_token_and_runs_once(
    redis_url, namespace
):
    client = redis.Redis.from_url(redis_url)
    keys = Keys(namespace)
    store = ReplyLostOnce(client, keys, ttl_s=600)
    store.tokens = []
    settings = WorkerSettings()
    (route,) = routes_of(CONFIG.deployments["local"], CONFIG)
    transport = CountedAnswers()
    runtime = WorkerRuntime(
        settings,
        CONFIG,
        store=store,
        transport=transport,
        adapters={route.id: build_adapter(route.deployment, settings)},
        redactor=Redactor(),
        router=FallbackRouter(FleetRouter(client, keys.route_prefix), LocalRouter()),
    )
    try:
        store.create("job", CompletionRequest.from_prompt("hi"), RoutingPolicy(targets=["local"]))
        report = runtime.run_job("job")
        assert report.retry_in_s is None, "run now, not rescheduled through the broker"
        assert report.summary["state"] == "succeeded"
        assert len(store.tokens) == 2
        assert len(set(store.tokens)) == 1, "the same lease token both times"
        assert store.state("job") is JobState.SUCCEEDED
        finished = store.get("job")
        assert finished is not None
        assert finished.runs == 1, "one run, counted once"
        assert CountedAnswers.calls == 1
    finally:
        runtime.close()
        client.close()
