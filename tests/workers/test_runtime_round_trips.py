"""A one-call job costs a worker three Redis round trips and three scripts: the claim, the
acquisition, and the finish with the call's breaker record in the same script run
(finish_and_record.lua). A breaker on another Redis takes a fourth of each."""

import json

import pytest
import redis

from routing.config import parse_config
from routing.fallback_router import FallbackRouter
from routing.fleet_router import FleetRouter
from routing.jobstore import JobStore
from routing.keys import Keys
from routing.local_router import LocalRouter
from routing.models import CompletionRequest, JobState, RoutingPolicy
from routing.planning import routes_of
from workers.http import HttpReply
from workers.providers.registry import build_adapter
from workers.redaction import Redactor
from workers.runtime import WorkerRuntime
from workers.settings import WorkerSettings

CONFIG = parse_config({"deployments": [{"id": "local", "provider": "ollama", "model": "m"}]})


class CountingConnection(redis.Connection):
    """Counts what goes out on the wire: a pipeline is one send."""

    sends = 0
    scripts = 0

    def send_packed_command(self, command, check_health=True):
        CountingConnection.sends += 1
        packed = command if isinstance(command, bytes) else b"".join(command)
        CountingConnection.scripts += packed.count(b"EVALSHA") + packed.count(b"EVAL\r\n")
        super().send_packed_command(command, check_health)


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


@pytest.mark.parametrize(("shares_job_store_redis", "round_trips"), [(True, 3), (False, 4)])
def test_a_one_call_jobs_breaker_record_rides_its_finish_when_they_share_a_redis(
    redis_url, namespace, shares_job_store_redis, round_trips
):
    scripts = round_trips
    counted = redis.Redis(
        connection_pool=redis.ConnectionPool.from_url(
            redis_url, connection_class=CountingConnection
        )
    )
    keys = Keys(namespace)
    store = JobStore(counted, keys, ttl_s=600)
    fleet = FleetRouter(counted, keys.route_prefix, shares_job_store_redis=shares_job_store_redis)
    settings = WorkerSettings()
    (route,) = routes_of(CONFIG.deployments["local"], CONFIG)
    runtime = WorkerRuntime(
        settings,
        CONFIG,
        store=store,
        transport=OllamaAnswers(),
        adapters={route.id: build_adapter(route.deployment, settings)},
        redactor=Redactor(),
        router=FallbackRouter(fleet, LocalRouter()),
    )
    try:
        for job_id in ("warm", "job"):  # the first run loads the scripts into Redis
            store.create(
                job_id, CompletionRequest.from_prompt("hi"), RoutingPolicy(targets=["local"])
            )
            before = CountingConnection.sends
            scripts_before = CountingConnection.scripts
            report = runtime.run_job(job_id)
            assert report.summary["state"] == "succeeded"
        assert CountingConnection.sends - before == round_trips
        assert CountingConnection.scripts - scripts_before == scripts
        assert store.state("job") is JobState.SUCCEEDED
        totals = counted.hgetall(keys.route("local").totals)
        assert totals[b"calls"] == b"2", "both calls recorded on the fleet's breaker"
    finally:
        runtime.close()
        counted.close()
