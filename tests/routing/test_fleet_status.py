"""What operators read about the fleet (turnout status, the exporter), and their breaker
actions, against a real Redis."""

import time

import pytest
import redis

from routing.breaker import BreakerSettings
from routing.config import DeploymentConfig
from routing.errors import ErrorClass
from routing.fleet_admin import operate_breaker
from routing.fleet_router import FleetRouter
from routing.fleet_status import percentile_ms, read_route_status
from routing.keys import LATENCY_SAMPLES, Keys, RouteKeys
from routing.redis_scripts import source
from routing.routes import CallOutcome, Route, Spent

SETTINGS = BreakerSettings(consecutive_failures=2, cooldown_s=60, cooldown_jitter=0)


def route(name="primary", rpm=60, **settings):
    deployment = DeploymentConfig(id=name, provider="openai", model="gpt-4o-mini")
    return Route(deployment, "OPENAI_API_KEY", SETTINGS.model_copy(update=settings), rpm, 10_000)


@pytest.fixture
def fleet(redis_url, namespace):
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    prefix = Keys(namespace).route_prefix
    yield FleetRouter(client, prefix), client, prefix
    client.close()


def called(router, r, error=None, latency=0.2, spent=None, tokens=100):
    grant = router.acquire([r], order="given", tokens=tokens).grant
    assert grant is not None
    return router.record(grant, CallOutcome(error_class=error, latency_s=latency, spent=spent))


def test_percentiles_are_measured_latencies_by_nearest_rank():
    assert percentile_ms([], 0.5) is None
    assert percentile_ms([1000], 0.5) == 1000, "a 1 s call reads 1000 ms, not <= 2500"
    hundred = [float(ms) for ms in range(100, 0, -1)]
    assert (percentile_ms(hundred, 0.5), percentile_ms(hundred, 0.95)) == (50, 95)
    assert percentile_ms([40, 7000], 0.95) == 7000, "beyond the last histogram bound too"


def test_a_call_under_a_millisecond_is_measured_not_rounded_to_zero(fleet):
    """A local server answers in a fraction of a millisecond: its latency is kept with its
    fractions (the integration test's p50 read 0.0 when whole milliseconds were sent)."""
    router, client, prefix = fleet
    r = route()
    called(router, r, latency=0.0004)
    (status,) = read_route_status(client, prefix, [r])
    assert status.p50_ms == pytest.approx(0.4)


def test_a_route_never_used_reads_closed_unchecked_and_full(fleet):
    _, client, prefix = fleet
    (status,) = read_route_status(client, prefix, [route()])
    assert (status.state, status.since, status.health.state) == ("closed", None, "unknown")
    assert (status.calls_recent, status.error_rate, status.p50_ms) == (0, None, None)
    assert (status.rpm_left, status.tpm_left) == (60, 10_000)


def test_calls_errors_latency_tokens_cost_and_headroom(fleet):
    router, client, prefix = fleet
    r = route()
    for _ in range(3):
        called(router, r, latency=0.2, spent=Spent(1000, 500, 0.001))
    called(router, r, ErrorClass.SERVER_ERROR, latency=3.0)
    (status,) = read_route_status(client, prefix, [r])
    assert (status.calls_recent, status.errors_recent) == (4, 1)
    assert status.error_rate == pytest.approx(0.25)
    assert (status.p50_ms, status.p95_ms) == (200, 3000), "measured, not bucket bounds"
    assert status.today["calls"] == 4
    assert status.today["prompt_tokens"] == 3000
    assert status.today["cost"] == pytest.approx(0.003)
    assert status.totals["err:server_error"] == 1
    assert status.rpm_left is not None
    assert 55 <= status.rpm_left <= 56.1, "four calls took four of 60 tokens"
    assert status.tpm_left is not None
    assert status.tpm_left < 10_000


def test_an_open_route_says_why_since_when_and_until_when(fleet):
    router, client, prefix = fleet
    r = route()
    called(router, r, ErrorClass.OVERLOADED)
    called(router, r, ErrorClass.OVERLOADED)
    (status,) = read_route_status(client, prefix, [r])
    assert (status.state, status.reason) == ("open", "2 consecutive failures")
    assert status.since is not None
    assert abs(status.since - time.time()) < 5
    assert status.open_until is not None
    assert 55 < status.open_until - time.time() <= 60


def test_the_last_health_check_is_shown(fleet):
    _, client, prefix = fleet
    script = client.register_script(source("record_health"))
    keys = RouteKeys.under(prefix, "primary")
    script(keys=[keys.breaker, keys.health], args=[0, 12.5, "auth", "401 from openai", 0, 1])
    (status,) = read_route_status(client, prefix, [route()])
    assert status.health.state == "failing"
    assert (status.health.ok, status.health.error_class) == (False, "auth")
    assert status.health.latency_ms == 12.5


def test_operators_open_close_and_reset_a_breaker(fleet):
    router, client, prefix = fleet
    r = route()
    opened = operate_breaker(client, prefix, "primary", "open", open_for_s=600)
    assert (opened.change, opened.state) == ("forced_open", "open")
    skip = router.acquire([r], order="given", tokens=1).skips[0]
    assert skip.describe() == "open (opened by an operator)"
    closed = operate_breaker(client, prefix, "primary", "close")
    assert (closed.change, closed.reason) == ("forced_closed", "by an operator (was open)")
    failback = called(router, r)
    assert failback is not None
    assert failback.change == "failback", "the first success after a close is the failback"
    called(router, r, ErrorClass.OVERLOADED)
    operate_breaker(client, prefix, "primary", "reset")
    called(router, r, ErrorClass.OVERLOADED)
    (status,) = read_route_status(client, prefix, [r])
    assert status.state == "closed", "reset forgot the first failure: one in a row, not two"
    assert status.calls_recent == 3, "but not the statistics"


def test_a_reader_whose_clock_is_a_day_off_reads_the_buckets_the_workers_write(fleet, monkeypatch):
    router, client, prefix = fleet
    r = route()
    called(router, r)
    skewed = time.time() + 86_400
    monkeypatch.setattr(time, "time", lambda: skewed)
    (status,) = read_route_status(client, prefix, [r])
    assert status.calls_recent == 1, "this minute is Redis's minute"
    assert status.today["calls"] == 1, "today is Redis's day"


def test_latencies_are_those_of_the_last_five_minutes_and_a_bounded_few(fleet):
    router, client, prefix = fleet
    r = route(rpm=None)
    samples = RouteKeys.under(prefix, r.id).latencies
    now_ms = int(client.time()[0]) * 1000
    client.rpush(samples, f"9000:{now_ms - 6 * 60_000}")  # a slow call six minutes ago
    called(router, r, latency=1.0)
    (status,) = read_route_status(client, prefix, [r])
    assert (status.p50_ms, status.p95_ms) == (1000, 1000), "the old sample is out of the window"
    for _ in range(LATENCY_SAMPLES + 5):
        called(router, r, latency=0.01, tokens=0)
    assert client.llen(samples) == LATENCY_SAMPLES, "a fixed cost per call"


def test_a_route_opened_by_slow_calls_shows_the_error_rate_that_opened_it(fleet):
    router, client, prefix = fleet
    r = route(slow_call_s=0.5)
    called(router, r, latency=2.0)
    called(router, r, latency=2.0)
    (status,) = read_route_status(client, prefix, [r])
    assert status.state == "open"
    assert (status.errors_recent, status.failures_recent) == (2, 2), "no error class, but slow"
    assert status.error_rate == 1.0


def test_errors_that_are_not_the_routes_fault_are_not_breaker_failures(fleet):
    router, client, prefix = fleet
    r = route()
    called(router, r)
    called(router, r, ErrorClass.BAD_REQUEST)
    (status,) = read_route_status(client, prefix, [r])
    assert (status.state, status.errors_recent, status.failures_recent) == ("closed", 1, 0)
    assert status.error_rate == 0.5
