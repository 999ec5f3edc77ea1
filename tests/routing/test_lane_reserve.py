"""A lane's reserve of a route's rate limits (DeploymentConfig.reserve), through both routers:
the fleet's (acquire_route.lua on a real Redis) and a process's own. A batch spends the
bucket down to the reserve and is refused there; the web app still gets what was kept."""

from __future__ import annotations

import random

import pytest

from routing.config import TurnoutConfig, load_config
from routing.errors import ConfigError
from routing.fleet_router import FleetRouter
from routing.jobstore import redis_client
from routing.keys import Keys
from routing.local_router import LocalRouter
from routing.planning import routes_of


@pytest.fixture(params=["fleet", "local"])
def router(request, redis_url, namespace):
    if request.param == "local":
        yield LocalRouter()
        return
    client = redis_client(redis_url)
    yield FleetRouter(client, Keys(namespace).route_prefix)
    client.close()


def config(tmp_path, **limits: object) -> TurnoutConfig:
    import yaml

    path = tmp_path / "turnout.yaml"
    deployment = {"id": "primary", "provider": "openai", "model": "gpt-4o-mini", **limits}
    path.write_text(
        yaml.safe_dump(
            {"deployments": [deployment], "policies": {"default": {"targets": ["primary"]}}}
        )
    )
    return load_config(path)


def grants(router, route, *, tokens: int = 1, tries: int = 50) -> int:
    """How many calls ``route`` grants in a row before it refuses one (as rate_limited)."""
    for taken in range(tries):
        acquired = router.acquire([route], order="given", tokens=tokens)
        if acquired.grant is None:
            (skip,) = acquired.skips
            assert skip.reason == "rate_limited"
            assert skip.retry_at is not None, "a refused call is told when to come back"
            return taken
    return tries


def route_of(cfg: TurnoutConfig, lane):
    (route,) = routes_of(cfg.deployments["primary"], cfg, random.Random(0), lane=lane)
    return route


def test_bulk_leaves_the_interactive_reserve_of_rpm(router, tmp_path):
    cfg = config(tmp_path, rpm=10, reserve={"interactive": 0.3})
    bulk, interactive = route_of(cfg, "bulk"), route_of(cfg, "interactive")
    assert (bulk.held, interactive.held) == (0.3, 0.0)
    assert grants(router, bulk) == 7, "bulk stops with 3 of 10 requests left"
    assert grants(router, interactive) == 3, "which the interactive lane still gets"
    assert grants(router, bulk) == 0


def test_bulk_leaves_the_interactive_reserve_of_tpm(router, tmp_path):
    cfg = config(tmp_path, tpm=1000, reserve={"interactive": 0.5})
    bulk, interactive = route_of(cfg, "bulk"), route_of(cfg, "interactive")
    assert grants(router, bulk, tokens=100) == 5
    assert grants(router, interactive, tokens=100) == 5


def test_no_reserve_shares_the_whole_bucket(router, tmp_path):
    cfg = config(tmp_path, rpm=4)
    assert grants(router, route_of(cfg, "bulk")) == 4
    assert grants(router, route_of(cfg, "interactive")) == 0


def test_a_reserve_names_a_lane_and_a_share_below_one(tmp_path):
    with pytest.raises(ConfigError):
        config(tmp_path, rpm=4, reserve={"web": 0.3})
    with pytest.raises(ConfigError):
        config(tmp_path, rpm=4, reserve={"interactive": 1.0})
