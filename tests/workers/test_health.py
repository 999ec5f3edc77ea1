"""Beat's health checks against a real Redis and a simulator over HTTP on 127.0.0.1."""

import logging
import time

import pytest
import redis

from ops.simulator import OpenAISimulator
from ops.simulator.server import ServerThread
from routing.config import parse_config
from routing.errors import ErrorClass
from routing.fleet_router import FleetRouter
from routing.keys import Keys, RouteKeys
from routing.planning import routes_of
from routing.routes import CallOutcome, Transition
from tests.providers.harness import settings
from workers.health import HealthChecker
from workers.http import HttpcoreTransport
from workers.providers.registry import build_adapter

KEY = "sim-key-health-checks"


@pytest.fixture
def sim():
    with ServerThread(OpenAISimulator(name="primary", api_key=KEY)) as server:
        yield server


def set_faults(server, **faults):
    server.app.state.faults = server.app.state.faults.updated(faults)


@pytest.fixture
def stack(sim, redis_url, namespace):
    """A checker over one route, the fleet router on the same Redis, and what they saw."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    transport = HttpcoreTransport()
    prefix = Keys(namespace).route_prefix
    made = []

    def make(*, breaker=None, health=None, model="sim-model"):
        config = parse_config(
            {
                "deployments": [
                    {
                        "id": "primary",
                        "provider": "openai",
                        "model": model,
                        "base_url": f"{sim.url}/v1",
                    }
                ],
                "breaker": {"cooldown_s": 0.3, "cooldown_jitter": 0, **(breaker or {})},
                "health": {"every_s": 1, "failing_after": 2, "timeout_s": 2, **(health or {})},
            }
        )
        env = settings(OPENAI_API_KEY=KEY)
        (route,) = routes_of(config.deployments["primary"], config)
        router = FleetRouter(client, prefix)
        seen: list[Transition] = []
        checker = HealthChecker(
            config,
            [route],
            adapters={route.id: build_adapter(route.deployment, env)},
            transport=transport,
            router=router,
            client=client,
            prefix=prefix,
            redact=str,
            on_transition=seen.append,
        )
        made.append(checker)
        return checker, router, route, seen

    yield make, client, prefix
    transport.close()
    client.close()


def test_each_route_is_checked_once_per_interval_however_many_beats_ask(stack):
    make, _, _ = stack
    first, *_ = make()
    second, *_ = make()
    while int(time.time() * 1000) % 1000 > 700:
        time.sleep(0.05)  # not at an interval's edge
    claimed = [len(first.claim_due()), len(second.claim_due()), len(first.claim_due())]
    assert claimed == [1, 0, 0], "the first to ask in the interval checks it; nobody else"
    time.sleep(1.05)
    assert len(second.claim_due()) == 1, "the next interval, again once"


def test_a_healthy_route_is_recorded_without_touching_its_breaker(stack, sim):
    make, client, prefix = stack
    checker, _, route, seen = make()
    result = checker.check(route)
    assert (result.ok, result.health, result.probe) == (True, "ok", False)
    last = client.hgetall(RouteKeys.under(prefix, "primary").health)
    assert last["ok"] == "1"
    assert abs(int(last["checked_at"]) / 1000 - time.time()) < 5
    assert float(last["latency_ms"]) > 0
    assert client.hget(RouteKeys.under(prefix, "primary").breaker, "state") is None, (
        "no breaker state was made"
    )
    assert sim.app.state.stats.probe_requests == 1, "the free credential probe, not a completion"
    assert sim.app.state.stats.chat_requests == 0
    assert seen == []


def test_a_route_failing_its_checks_turns_failing_after_the_threshold(stack, sim, caplog):
    make, client, prefix = stack
    checker, _, route, _ = make()
    set_faults(sim, down=True)
    first = checker.check(route)
    assert (first.ok, first.error_class, first.health) == (False, ErrorClass.OVERLOADED, "ok")
    with caplog.at_level(logging.WARNING, logger="turnout.health"):
        second = checker.check(route)
    assert second.health == "failing"
    assert client.hget(RouteKeys.under(prefix, "primary").breaker, "health") == "failing", (
        "what routing reads"
    )
    assert any("now failing" in m for m in caplog.messages)
    set_faults(sim, down=False)
    assert checker.check(route).health == "ok", "one good check is enough"


def test_a_completion_check_sends_a_one_token_completion(stack, sim):
    make, *_ = stack
    checker, _, route, _ = make(health={"probe": "completion"})
    assert checker.check(route).ok
    (sent,) = list(sim.app.state.stats.recent)
    assert sent["body"]["max_completion_tokens"] == 1, "OpenAI's name for max_tokens"


def test_a_reasoning_model_spending_its_one_token_thinking_passes_a_completion_check(stack, sim):
    """o3 answers a 1-token probe with empty text and finish_reason length (incomplete for a
    job): the route answered, so the check passes."""
    make, *_ = stack
    checker, _, route, _ = make(health={"probe": "completion"}, model="o3")
    result = checker.check(route)
    assert result.ok, result
    (sent,) = list(sim.app.state.stats.recent)
    assert sent["body"]["model"] == "o3"


def trip(router, route):
    for _ in range(5):
        grant = router.acquire([route], order="given", tokens=1).grant
        assert grant is not None
        router.record(grant, CallOutcome(error_class=ErrorClass.OVERLOADED, latency_s=0.1))


def test_beat_fails_back_a_recovered_route_after_k_good_checks(stack):
    make, client, prefix = stack
    checker, router, route, seen = make(breaker={"close_after": 2})
    trip(router, route)
    assert checker.check(route).probe is False, "still cooling: a plain check"
    assert client.hget(RouteKeys.under(prefix, "primary").breaker, "state") == "open"
    time.sleep(0.35)
    first = checker.check(route)
    assert first.probe, "past its cool-down, the check is the half-open probe"
    assert [t.change for t in seen] == ["half_open"]
    assert client.hget(RouteKeys.under(prefix, "primary").breaker, "state") == "half_open", (
        "one good check proves little"
    )
    second = checker.check(route)
    assert second.probe
    assert [t.change for t in seen] == ["half_open", "closed"]
    assert client.hget(RouteKeys.under(prefix, "primary").breaker, "state") == "closed"
    assert client.hget(RouteKeys.under(prefix, "primary").breaker, "lat") is None, (
        "a check's latency is not a call's"
    )


def test_a_failed_probe_check_reopens_the_breaker(stack, sim):
    make, client, prefix = stack
    checker, router, route, seen = make()
    trip(router, route)
    set_faults(sim, down=True)
    time.sleep(0.35)
    assert checker.check(route).probe
    assert [t.change for t in seen] == ["half_open", "reopened"]
    assert client.hget(RouteKeys.under(prefix, "primary").breaker, "state") == "open"


def test_manual_failback_is_left_to_an_operator(stack):
    make, client, prefix = stack
    checker, router, route, seen = make(breaker={"failback": "manual"})
    trip(router, route)
    time.sleep(0.35)
    result = checker.check(route)
    assert (result.ok, result.probe) == (True, False), "health is still reported"
    assert client.hget(RouteKeys.under(prefix, "primary").breaker, "state") == "open"
    assert seen == []
