"""Why a breaker opened, in both routers (the Lua scripts and routing.breaker alike): a wrong
address opens it with the URL as its reason, and a reply cut short by its budget (incomplete)
never counts against a route."""

from __future__ import annotations

import pytest

from routing.breaker import CREDENTIAL_REJECTED, opened_until_probe
from routing.errors import ErrorClass, Incomplete, Misconfigured
from routing.fleet_router import FleetRouter
from routing.jobstore import redis_client
from routing.keys import Keys
from routing.local_router import LocalRouter
from routing.routes import CallOutcome
from tests.routing.test_fleet_routers import FAST, call, refused, route

WRONG = Misconfigured(
    "404 at http://gateway:8080/openai/v1/chat/completions: this is not the provider's API "
    "(is the base URL right?)",
    status_code=404,
)


@pytest.fixture(params=["fleet", "local"])
def router(request, redis_url, namespace):
    if request.param == "local":
        yield LocalRouter()
        return
    client = redis_client(redis_url)
    yield FleetRouter(client, Keys(namespace).route_prefix)
    client.close()


def record(router, r, error):
    acquired = router.acquire([r], order="given", tokens=10)
    assert acquired.grant is not None, acquired.skips
    return router.record(acquired.grant, CallOutcome.of(error, latency_s=0.01))


def test_a_wrong_address_opens_the_route_at_once_with_its_url_as_the_reason(router):
    r = route()
    transition = record(router, r, WRONG)
    assert transition is not None
    assert transition.change == "opened"
    assert transition.reason == f"misconfigured: {WRONG.message}"
    skip = refused(router, r)
    assert skip.why == transition.reason
    assert opened_until_probe(skip.why), "a job does not wait for its cool-down"


def test_a_credential_rejected_after_a_wrong_address_says_so(router):
    r = route()
    record(router, r, WRONG)
    skip = refused(router, r)
    assert skip.why.startswith("misconfigured: ")
    auth = route("other")
    assert call(router, auth, ErrorClass.AUTH)[1].reason == CREDENTIAL_REJECTED


def test_incomplete_replies_never_count_against_the_route(router):
    r = route()
    spent = Incomplete("the output budget ran out before any answer", status_code=200)
    for _ in range(2 * FAST.consecutive_failures):
        assert record(router, r, spent) is None
    for _ in range(FAST.consecutive_failures - 1):
        assert call(router, r, ErrorClass.OVERLOADED)[1] is None, "nor toward the five"


@pytest.mark.parametrize(
    ("why", "until_probe"),
    [
        (CREDENTIAL_REJECTED, True),
        ("misconfigured: 404 at http://h/v1/chat/completions", True),
        ("5 consecutive failures", False),
        ("probe failed", False),
        ("misconfigured", False),
    ],
)
def test_which_reasons_wait_for_a_probe(why, until_probe):
    assert opened_until_probe(why) is until_probe
