"""Routes this worker cannot call because a variable they need is unset.

One missing key does not stop a worker (a refusal to start is a crash loop under a supervisor
that restarts it): the worker starts, says loudly which variables are unset, and the planner
passes those routes over as ``missing_credential`` (routing.planning), never calling them, so
their breakers never move. ``TURNOUT_STRICT_CONFIG=1`` keeps the refusal instead.

What a worker found is written to each route's health hash (``unusable``), so ``turnout status``
shows the workers' truth rather than the environment of whoever runs it. The last worker to
start says, for every route: one that has the key clears the mark.
"""

from __future__ import annotations

import logging

import redis

from routing.config import TurnoutConfig
from routing.keys import RouteKeys
from routing.planning import routes_of

log = logging.getLogger("turnout.worker")

#: The field of a route's health hash (RouteKeys.health) that says why no worker may call it.
UNUSABLE_FIELD = "unusable"


def describe_unusable(config: TurnoutConfig, unusable: dict[str, str]) -> list[str]:
    """Lines for the start-up log: each unusable route and what to set, and, when no route is
    left, that every job will fail until one is."""
    if not unusable:
        return []
    lines = [
        f"route {route_id} is out of rotation: {why}; fix: {_fix_for(why)}"
        for route_id, why in unusable.items()
    ]
    total = sum(len(routes_of(d, config)) for d in config.deployments.values())
    if len(unusable) == total:
        lines.append(
            "no route of the config can be called from this worker: its jobs will fail as "
            "no_candidates (TURNOUT_STRICT_CONFIG=1 refuses to start instead)"
        )
    return lines


def _fix_for(why: str) -> str:
    if not why.startswith("store:"):
        return "export the variable (or add it to .env) and restart the worker"
    if "TURNOUT_ENCRYPTION_KEY" in why and "not set" in why:
        return "give the worker the master key (TURNOUT_ENCRYPTION_KEY) and restart it"
    return "see turnout keys list; the worker follows the key store without a restart"


def record_unusable(
    client: redis.Redis, prefix: str, config: TurnoutConfig, unusable: dict[str, str]
) -> None:
    """Mark the unusable routes in their health hash, and clear the mark of the others."""
    pipe = client.pipeline(transaction=False)
    for deployment in config.deployments.values():
        for route in routes_of(deployment, config):
            key = RouteKeys.under(prefix, route.id).health
            if route.id in unusable:
                pipe.hset(key, UNUSABLE_FIELD, unusable[route.id])
            else:
                pipe.hdel(key, UNUSABLE_FIELD)
    pipe.execute()
