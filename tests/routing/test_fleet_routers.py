"""The breaker's rules, run through both routers: the fleet's (Lua on a real Redis) and a
process's own (routing.breaker in Python). One table of scenarios, the same verdicts from both."""

import time

import pytest
import redis

from routing.breaker import BreakerSettings
from routing.config import DeploymentConfig
from routing.errors import ErrorClass, ReplyBudgetExhausted
from routing.fallback_router import FallbackRouter
from routing.fleet_router import FleetRouter
from routing.jobstore import redis_client
from routing.keys import LATENCY_SAMPLES, Keys, RouteKeys
from routing.local_router import LocalRouter
from routing.routes import CallOutcome, Route, Spent, latency_bucket

FAST = BreakerSettings(
    consecutive_failures=5,
    failure_rate=0.5,
    window_s=60,
    min_calls=100,
    cooldown_s=0.3,
    cooldown_max_s=5,
    cooldown_jitter=0.0,
    half_open_permits=1,
    probe_ttl_s=5,
    auth_cooldown_s=0.6,
    close_after=1,
)


def route(name="primary", *, settings=FAST, rpm=None, tpm=None):
    deployment = DeploymentConfig(id=name, provider="openai", model="m")
    return Route(deployment, "OPENAI_API_KEY", settings, rpm, tpm)


@pytest.fixture(params=["fleet", "local"])
def router(request, redis_url, namespace):
    if request.param == "local":
        yield LocalRouter()
        return
    client = redis_client(redis_url)
    yield FleetRouter(client, Keys(namespace).route_prefix)
    client.close()


def call(router, r, error=None, *, latency=0.01, retry_after=None):
    acquired = router.acquire([r], order="given", tokens=10)
    assert acquired.grant is not None, acquired.skips
    return acquired.grant, router.record(
        acquired.grant, CallOutcome(error_class=error, latency_s=latency, retry_after_s=retry_after)
    )


def refused(router, r):
    acquired = router.acquire([r], order="given", tokens=10)
    assert acquired.grant is None
    (skip,) = acquired.skips
    return skip


def test_consecutive_failures_open_the_breaker(router):
    r = route()
    for _ in range(4):
        assert call(router, r, ErrorClass.OVERLOADED)[1] is None
    transition = call(router, r, ErrorClass.SERVER_ERROR)[1]
    assert transition is not None
    assert (transition.change, transition.state) == ("opened", "open")
    assert "5 consecutive failures" in transition.reason
    skip = refused(router, r)
    assert skip.reason == "open"
    assert skip.describe() == "open (5 consecutive failures)", "a skip says why the breaker opened"
    assert skip.retry_at is not None
    assert skip.retry_at > time.time()


def test_a_success_resets_the_consecutive_count(router):
    r = route()
    for _ in range(4):
        call(router, r, ErrorClass.TIMEOUT)
    call(router, r)
    for _ in range(4):
        assert call(router, r, ErrorClass.TIMEOUT)[1] is None


def test_the_failure_rate_opens_it_once_the_window_has_enough_calls(router):
    r = route(settings=FAST.model_copy(update={"consecutive_failures": 10, "min_calls": 4}))
    call(router, r)
    call(router, r, ErrorClass.CONNECTION)
    call(router, r)
    transition = call(router, r, ErrorClass.CONNECTION)[1]
    assert transition is not None
    assert transition.change == "opened"
    assert "2 of 4 calls failed" in transition.reason


def test_half_open_grants_one_probe_and_its_success_closes(router):
    r = route()
    for _ in range(5):
        call(router, r, ErrorClass.OVERLOADED)
    time.sleep(0.35)
    probe = router.acquire([r], order="given", tokens=10)
    assert probe.grant is not None
    assert probe.grant.probe
    assert refused(router, r).reason == "no_probe_permit", "one probe at a time"
    transition = router.record(probe.grant, CallOutcome(error_class=None, latency_s=0.01))
    assert transition is not None
    assert (transition.change, transition.state) == ("closed", "closed")
    assert router.acquire([r], order="given", tokens=10).grant is not None


def test_a_probe_permit_outlives_its_call_however_short_the_probe_ttl(router):
    r = route(settings=FAST.model_copy(update={"probe_ttl_s": 0.2}))
    for _ in range(5):
        call(router, r, ErrorClass.OVERLOADED)
    time.sleep(0.35)
    slow_probe = router.acquire([r], order="given", tokens=10, hold_s=30)
    assert slow_probe.grant is not None
    assert slow_probe.grant.probe
    time.sleep(0.3)
    skip = refused(router, r)
    assert skip.reason == "no_probe_permit", "a second probe while the first may still answer"
    assert skip.retry_at is not None
    assert 0 < skip.retry_at - time.time() <= 1.0, "looked at again soon: probes answer early"
    time.sleep(1.0)
    assert refused(router, r).reason == "no_probe_permit", "held for the call's timeout"


def test_a_failed_probe_reopens_for_twice_as_long(router):
    r = route()
    for _ in range(5):
        call(router, r, ErrorClass.OVERLOADED)
    time.sleep(0.35)
    probe = router.acquire([r], order="given", tokens=10).grant
    assert probe is not None
    transition = router.record(
        probe, CallOutcome(error_class=ErrorClass.OVERLOADED, latency_s=0.01)
    )
    assert transition is not None
    assert transition.change == "reopened"
    skip = refused(router, r)
    assert skip.retry_at is not None
    assert 0.5 < skip.retry_at - time.time() <= 0.6, "the second cool-down is 2 x 0.3 s"


def test_auth_errors_open_at_once_for_the_credential_cool_down(router):
    r = route()
    transition = call(router, r, ErrorClass.AUTH)[1]
    assert transition is not None
    assert (transition.change, transition.reason) == ("opened", "credential rejected")
    skip = refused(router, r)
    assert skip.retry_at is not None
    assert 0.5 < skip.retry_at - time.time() <= 0.6


def test_retry_after_cools_the_route_for_exactly_that_long(router):
    r = route()
    transition = call(router, r, ErrorClass.RATE_LIMITED, retry_after=0.4)[1]
    assert transition is not None
    assert transition.change == "cooled"
    assert transition.state == "closed", "a 429 with Retry-After is not a failure"
    assert refused(router, r).reason == "cooling"
    time.sleep(0.45)
    assert router.acquire([r], order="given", tokens=10).grant is not None


def test_a_failure_with_a_retry_after_counts_and_cools_the_route_that_long(router):
    r = route()
    assert call(router, r, ErrorClass.OVERLOADED, retry_after=0.4)[1] is None, "not an opening"
    skip = refused(router, r)
    assert skip.reason == "cooling", "a 503's Retry-After keeps every caller away"
    assert skip.retry_at is not None
    assert 0.2 < skip.retry_at - time.time() <= 0.4
    time.sleep(0.45)
    for _ in range(3):
        call(router, r, ErrorClass.SERVER_ERROR)
    transition = call(router, r, ErrorClass.SERVER_ERROR)[1]
    assert transition is not None
    assert transition.reason == "5 consecutive failures", "the cooled failure counted"


def test_bad_requests_and_refusals_count_for_nothing(router):
    r = route()
    for error in [ErrorClass.BAD_REQUEST, ErrorClass.CONTENT_POLICY, ErrorClass.CONTEXT_LENGTH] * 4:
        assert call(router, r, error)[1] is None
    for _ in range(4):
        assert call(router, r, ErrorClass.OVERLOADED)[1] is None


def test_a_worker_out_of_reply_budget_moves_no_breaker(router):
    r = route()
    spent = ReplyBudgetExhausted("this worker's reply budget is spent")
    for _ in range(2 * FAST.consecutive_failures):
        grant = router.acquire([r], order="given", tokens=10).grant
        assert grant is not None, "the route stayed closed"
        assert router.record(grant, CallOutcome.of(spent, latency_s=0.01)) is None
    for _ in range(4):
        assert call(router, r, ErrorClass.OVERLOADED)[1] is None, "nor did it count toward five"


def test_the_rpm_limit_holds_and_says_when_a_token_returns(router):
    r = route(rpm=2)
    call(router, r)
    call(router, r)
    skip = refused(router, r)
    assert skip.reason == "rate_limited"
    assert skip.retry_at is not None
    assert 0 < skip.retry_at - time.time() <= 30.1, "one token per 30 s at 2 rpm"


def test_the_tpm_limit_takes_the_estimate_and_settles_with_the_real_usage(router):
    r = route(tpm=1000)
    first = router.acquire([r], order="given", tokens=600).grant
    assert first is not None
    skip = router.acquire([r], order="given", tokens=600).skips[0]
    assert skip.reason == "rate_limited", "600 + 600 estimated tokens exceed 1000 per minute"
    assert skip.retry_at is not None
    assert 11 < skip.retry_at - time.time() <= 12.1, "200 tokens short at 1000/min: 12 s"
    router.record(first, CallOutcome(error_class=None, latency_s=0.1, token_delta=100 - 600))
    second = router.acquire([r], order="given", tokens=600).grant
    assert second is not None, "the call used 100 tokens, not 600: the rest came back"


def test_each_key_of_a_pool_has_its_own_breaker_and_limits(router):
    deployment = DeploymentConfig(
        id="pooled", provider="openai", model="m", api_key_env=["POOL_KEY_A", "POOL_KEY_B"]
    )
    key_a = Route(deployment, "POOL_KEY_A", FAST, 60, None)
    key_b = Route(deployment, "POOL_KEY_B", FAST, 1, None)
    assert (key_a.id, key_b.id) == ("pooled/POOL_KEY_A", "pooled/POOL_KEY_B")
    for _ in range(5):
        call(router, key_a, ErrorClass.OVERLOADED)
    acquired = router.acquire([key_a, key_b], order="given", tokens=10)
    assert acquired.grant is not None
    assert acquired.grant.route.id == "pooled/POOL_KEY_B", "key B is closed and has its token"
    assert [(s.route.id, s.reason) for s in acquired.skips] == [("pooled/POOL_KEY_A", "open")]
    assert refused(router, key_b).reason == "rate_limited", "and its own rpm"


def test_the_first_available_route_is_taken_and_the_others_explained(router):
    down, up = route("down"), route("up")
    for _ in range(5):
        call(router, down, ErrorClass.OVERLOADED)
    acquired = router.acquire([down, up], order="given", tokens=10)
    assert acquired.grant is not None
    assert acquired.grant.route.id == "up"
    assert [(s.route.id, s.reason) for s in acquired.skips] == [("down", "open")]


def test_latency_and_inflight_orders(router):
    slow, quick = route("slow"), route("quick")
    call(router, slow, latency=0.5)
    call(router, quick, latency=0.05)
    chosen = router.acquire([slow, quick], order="latency", tokens=10).grant
    assert chosen is not None
    assert chosen.route.id == "quick"
    busy = router.acquire([quick], order="given", tokens=10).grant  # stays in flight
    assert busy is not None
    chosen = router.acquire([quick, slow], order="inflight", tokens=10).grant
    assert chosen is not None
    assert chosen.route.id == "slow"


def test_a_call_in_flight_when_the_route_opened_changes_nothing(router):
    r = route()
    straggler = router.acquire([r], order="given", tokens=10).grant
    for _ in range(5):
        call(router, r, ErrorClass.OVERLOADED)
    assert straggler is not None
    assert (
        router.record(straggler, CallOutcome(error_class=ErrorClass.OVERLOADED, latency_s=0.01))
        is None
    )
    assert refused(router, r).reason == "open"


def test_without_its_redis_the_router_falls_back_to_this_process_quickly(caplog):
    from ops.simulator.server import free_port

    dead = redis_client(f"redis://127.0.0.1:{free_port()}/0", socket_timeout_s=0.2)
    router = FallbackRouter(
        FleetRouter(dead, Keys("t").route_prefix), LocalRouter(), retry_after_s=60
    )
    r = route()
    started = time.monotonic()
    for _ in range(5):
        grant, _ = call(router, r, ErrorClass.OVERLOADED)
        assert grant.source == "local"
    assert refused(router, r).reason == "open", "the local breaker applies the same rules"
    assert time.monotonic() - started < 2.0, "no call waits on the dead Redis"
    assert sum("per-process breaker" in m for m in caplog.messages) == 1, "said once"
    dead.close()


def test_a_route_never_measured_is_tried_by_one_caller_at_a_time(router):
    measured, fresh = route("measured"), route("fresh")
    call(router, measured, latency=0.1)
    first = router.acquire([measured, fresh], order="latency", tokens=10).grant
    assert first is not None
    assert first.route.id == "fresh", "an unmeasured route is tried"
    second = router.acquire([measured, fresh], order="latency", tokens=10).grant
    assert second is not None
    assert second.route.id == "measured", "not by everyone while the first call finds out"


def test_a_released_grant_gives_its_probe_permit_back(router):
    r = route()
    for _ in range(5):
        call(router, r, ErrorClass.OVERLOADED)
    time.sleep(0.35)
    probe = router.acquire([r], order="given", tokens=10).grant
    assert probe is not None
    assert refused(router, r).reason == "no_probe_permit"
    router.release(probe)
    again = router.acquire([r], order="given", tokens=10).grant
    assert again is not None
    assert again.probe


def test_a_failing_breaker_script_is_logged_as_a_failure_not_an_outage(
    redis_url, namespace, caplog
):
    client = redis_client(redis_url)
    fleet = FleetRouter(client, Keys(namespace).route_prefix)
    fleet._acquire = client.register_script("return redis.error_reply('ERR a bug in the script')")
    router = FallbackRouter(fleet, LocalRouter(), retry_after_s=60)
    grant, _ = call(router, route())
    assert grant.source == "local", "a job never fails because of the breaker"
    assert any(
        "breaker Redis failed (ResponseError" in r.message and r.levelname == "ERROR"
        for r in caplog.records
    )
    client.close()


def test_two_probe_successes_close_and_the_next_success_is_the_failback(router):
    r = route(settings=FAST.model_copy(update={"close_after": 2}))
    for _ in range(5):
        call(router, r, ErrorClass.OVERLOADED)
    time.sleep(0.35)
    acquired = router.acquire([r], order="given", tokens=10)
    assert [(t.route_id, t.change) for t in acquired.transitions] == [("primary", "half_open")]
    assert acquired.grant is not None
    assert router.record(acquired.grant, CallOutcome(error_class=None, latency_s=0.01)) is None
    second = router.acquire([r], order="given", tokens=10)
    assert second.transitions == [], "moved to half-open once"
    assert second.grant is not None
    assert second.grant.probe, "still half-open: the second success is a probe too"
    closed = router.record(second.grant, CallOutcome(error_class=None, latency_s=0.01))
    assert closed is not None
    assert closed.change == "closed"
    failback = call(router, r)[1]
    assert failback is not None
    assert failback.change == "failback"
    assert call(router, r)[1] is None


def test_with_manual_failback_an_open_route_waits_for_an_operator(router):
    r = route(settings=FAST.model_copy(update={"failback": "manual"}))
    for _ in range(5):
        call(router, r, ErrorClass.OVERLOADED)
    time.sleep(0.35)
    skip = refused(router, r)
    assert (skip.reason, skip.retry_at) == ("open", None)
    assert "failback is manual" in skip.why


def test_a_probes_only_acquire_takes_nothing_from_a_closed_route(router):
    closed = route("closed", rpm=1)
    acquired = router.acquire_probe(closed)
    assert acquired.grant is None
    assert [(s.reason, s.retry_at) for s in acquired.skips] == [("closed", None)]
    assert call(router, closed)[0].probe is False, "its one rpm token was still there"

    tripped = route("tripped")
    for _ in range(5):
        call(router, tripped, ErrorClass.OVERLOADED)
    assert router.acquire_probe(tripped).skips[0].reason == "open"
    time.sleep(0.35)
    probing = router.acquire_probe(tripped)
    assert probing.grant is not None
    assert probing.grant.probe
    assert [t.change for t in probing.transitions] == ["half_open"]


@pytest.fixture
def fleet(redis_url, namespace):
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield FleetRouter(client, Keys(namespace).route_prefix), client, Keys(namespace).route_prefix
    client.close()


def test_a_route_failing_its_health_checks_goes_last_but_is_never_ruled_out(fleet):
    router, client, prefix = fleet
    sick, well = route("sick"), route("well")
    client.hset(RouteKeys.under(prefix, "sick").breaker, "health", "failing")
    chosen = router.acquire([sick, well], order="given", tokens=10).grant
    assert chosen is not None
    assert chosen.route.id == "well", "a healthy alternative comes first"
    client.hset(RouteKeys.under(prefix, "well").breaker, "health", "failing")
    chosen = router.acquire([sick, well], order="given", tokens=10).grant
    assert chosen is not None
    assert chosen.route.id == "sick", "all unhealthy: still tried, in the given order"


def test_every_call_is_counted_for_status_and_metrics(fleet):
    router, client, prefix = fleet
    r = route()
    grant = router.acquire([r], order="given", tokens=10).grant
    assert grant is not None
    router.record(
        grant, CallOutcome(error_class=None, latency_s=0.3, spent=Spent(1000, 200, 0.0015))
    )
    grant = router.acquire([r], order="given", tokens=10).grant
    assert grant is not None
    router.record(grant, CallOutcome(error_class=ErrorClass.OVERLOADED, latency_s=2.0))
    keys = RouteKeys.under(prefix, "primary")
    totals = client.hgetall(keys.totals)
    assert totals["calls"] == "2"
    assert totals["err:overloaded"] == "1"
    assert (totals["prompt_tokens"], totals["completion_tokens"]) == ("1000", "200")
    assert float(totals["cost"]) == pytest.approx(0.0015)
    assert float(totals["lat_sum"]) == pytest.approx(2.3)
    assert totals[f"b{latency_bucket(0.3)}"] == "1"
    assert totals[f"b{latency_bucket(2.0)}"] == "1"
    minutes = [k for k in client.scan_iter(match=f"{keys.minutes}:*")]
    days = [k for k in client.scan_iter(match=f"{keys.days}:*")]
    assert len(days) == 1
    assert sum(int(client.hget(m, "calls") or 0) for m in minutes) == 2
    assert sum(int(client.hget(m, "errors") or 0) for m in minutes) == 1
    assert client.hget(days[0], "calls") == "2"
    assert 0 < client.pttl(minutes[0]) <= 600_000, "minutes are kept ten minutes"
    released = router.acquire([r], order="given", tokens=10).grant
    assert released is not None
    router.release(released)
    assert client.hget(keys.totals, "calls") == "2", "a grant given back is no call"

    assert 0 < client.pttl(days[0]) <= 3 * 86_400_000, "days are kept three days"
    assert 0 < client.pttl(keys.latencies) <= 600_000


def test_a_routes_window_of_successes_keeps_ten_buckets_and_an_expiry(fleet):
    """record_outcome.lua renews the window's expiry and drops old buckets only when a call
    opens a bucket: a route that only succeeds must still keep the window bounded."""
    router, client, prefix = fleet
    settings = BreakerSettings(window_s=1, min_calls=1000, cooldown_s=1, cooldown_max_s=5)
    r = route("busy", settings=settings)
    window = RouteKeys.under(prefix, "busy").window
    started = time.monotonic()
    while time.monotonic() - started < 2.5:  # two and a half windows, 25 buckets
        grant = router.acquire([r], order="given", tokens=1).grant
        assert grant is not None
        router.record(grant, CallOutcome(error_class=None, latency_s=0.001))
    assert 0 < len(client.hkeys(window)) <= 11
    assert 0 < client.pttl(window) <= 2000
    latest = client.lrange(RouteKeys.under(prefix, "busy").latencies, 0, -1)
    assert len(latest) <= LATENCY_SAMPLES


SUCCESS = CallOutcome(error_class=None, latency_s=0.01)


def test_a_record_rides_another_write_only_on_a_fleet_sharing_the_job_stores_redis(
    redis_url, namespace
):
    client = redis_client(redis_url)
    prefix = Keys(namespace).route_prefix
    shared = FleetRouter(client, prefix, shares_job_store_redis=True)
    r = route()
    grant = shared.acquire([r], order="given", tokens=10).grant
    assert grant is not None
    assert FleetRouter(client, prefix).rider(grant, SUCCESS) is None, "not the job store's Redis"
    assert shared.rider(grant, SUCCESS) is not None
    local = LocalRouter()
    local_grant = local.acquire([r], order="given", tokens=10).grant
    assert local_grant is not None
    assert local.rider(local_grant, SUCCESS) is None, "no script: recorded on its own"
    fallback = FallbackRouter(shared, LocalRouter(), retry_after_s=60)
    fleet_grant = fallback.acquire([r], order="given", tokens=10).grant
    assert fleet_grant is not None
    assert fleet_grant.source == "fleet"
    assert fallback.rider(fleet_grant, SUCCESS) is not None
    client.close()


def test_a_fallback_router_on_its_own_breaker_gives_no_rider():
    from ops.simulator.server import free_port

    dead = redis_client(f"redis://127.0.0.1:{free_port()}/0", socket_timeout_s=0.2)
    fleet = FleetRouter(dead, Keys("t").route_prefix, shares_job_store_redis=True)
    router = FallbackRouter(fleet, LocalRouter(), retry_after_s=60)
    grant = router.acquire([route()], order="given", tokens=10).grant
    assert grant is not None
    assert grant.source == "local"
    assert router.rider(grant, SUCCESS) is None
    dead.close()


def test_a_rider_applies_the_record_only_when_sent_and_reads_its_transition(redis_url, namespace):
    client = redis_client(redis_url)
    router = FleetRouter(client, Keys(namespace).route_prefix, shares_job_store_redis=True)
    r = route()
    for _ in range(5):
        call(router, r, ErrorClass.OVERLOADED)
    time.sleep(0.35)
    probe = router.acquire([r], order="given", tokens=10).grant
    assert probe is not None
    assert probe.probe
    rider = router.rider(probe, SUCCESS)
    assert rider is not None
    assert refused(router, r).reason == "no_probe_permit", "nothing sent yet"
    reply = rider.call.script(keys=rider.call.keys, args=rider.call.args)
    transition = rider.transition_of(reply)
    assert transition is not None
    assert (transition.route_id, transition.change, transition.state) == (
        "primary",
        "closed",
        "closed",
    )
    client.close()


REFUSED = "connection refused at 127.0.0.1:9: nothing listens there (is the base URL right?)"


def unreachable_call(router, r, message=REFUSED):
    acquired = router.acquire([r], order="given", tokens=10)
    assert acquired.grant is not None, acquired.skips
    return router.record(
        acquired.grant,
        CallOutcome(error_class=ErrorClass.CONNECTION, latency_s=0.01, unreachable=message),
    )


def test_a_breaker_opened_by_unreachable_calls_says_so_and_what_they_found(router):
    r = route()
    for _ in range(4):
        assert unreachable_call(router, r) is None
    transition = unreachable_call(router, r, "no such host nowhere.invalid")
    assert transition is not None
    assert transition.change == "opened"
    skip = refused(router, r)
    assert skip.unreachable == "no such host nowhere.invalid", "the last call's message"
    assert skip.describe() == "open (5 consecutive failures)"


@pytest.mark.parametrize("ordinary_at", [0, 2, 4])
def test_one_ordinary_failure_among_those_that_opened_it_makes_it_an_ordinary_open(
    router, ordinary_at
):
    r = route()
    for i in range(5):
        if i == ordinary_at:
            call(router, r, ErrorClass.CONNECTION)
        else:
            unreachable_call(router, r)
    skip = refused(router, r)
    assert skip.reason == "open"
    assert skip.unreachable == ""


def test_a_success_forgets_the_unreachable_calls_before_it(router):
    r = route()
    unreachable_call(router, r)
    call(router, r)
    for _ in range(4):
        call(router, r, ErrorClass.TIMEOUT)
    unreachable_call(router, r)
    assert refused(router, r).unreachable == ""


def test_the_rate_opens_it_as_unreachable_when_every_failure_since_a_success_was(router):
    r = route(settings=FAST.model_copy(update={"consecutive_failures": 10, "min_calls": 4}))
    call(router, r)
    unreachable_call(router, r)
    call(router, r)
    transition = unreachable_call(router, r)
    assert transition is not None
    assert transition.change == "opened"
    assert refused(router, r).unreachable == REFUSED


def test_a_failed_probe_reopens_as_unreachable_by_what_the_probe_found(router):
    r = route()
    for _ in range(5):
        call(router, r, ErrorClass.OVERLOADED)
    assert refused(router, r).unreachable == ""
    time.sleep(0.35)
    assert unreachable_call(router, r) is not None  # the probe: reopened
    assert refused(router, r).unreachable == REFUSED


def test_a_probe_success_clears_what_opened_it(router):
    r = route()
    for _ in range(5):
        unreachable_call(router, r)
    time.sleep(0.35)
    grant, transition = call(router, r)
    assert grant.probe
    assert transition is not None
    assert transition.change == "closed"
    for _ in range(5):
        call(router, r, ErrorClass.OVERLOADED)
    assert refused(router, r).unreachable == "", "an ordinary open after the close"


def test_a_credential_error_replaces_an_unreachable_open(router):
    r = route()
    for _ in range(5):
        unreachable_call(router, r)
    straggler_open = refused(router, r)
    assert straggler_open.unreachable == REFUSED
    time.sleep(0.35)
    call(router, r, ErrorClass.AUTH)  # the probe finds the address answers, the key does not
    skip = refused(router, r)
    assert (skip.why, skip.unreachable) == ("credential rejected", "")
