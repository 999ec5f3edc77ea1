"""Candidate planning: which routes a job may try, in which order, and why others are out.

Pure (no I/O), so every rule is tested without servers. What needs the fleet's live state (the
breaker, rate limits, measured latency, calls in flight) is decided per attempt by a Router
(routing.routes), in the same order this plan gives, or in the order it names ("latency" for the
``fastest`` strategy, "inflight" for ``least_busy``).

Rules applied here, in order, each passed-over target recorded with its reason:
  aliases expanded; targets lacking what the request needs: tools, a JSON schema, images,
  reasoning ("lacks_capability", routing.capability_fit); ``allow_providers``/
  ``deny_providers`` ("denied_by_policy"); targets whose
  context window cannot hold the estimated prompt plus max_tokens ("context_too_small", when
  ``context_window_fallback``); targets whose estimated cost exceeds ``max_cost_usd``
  ("over_budget"); then the strategy's order; then each deployment's key pool, in a rotated
  order so calls spread across its keys; last, routes the worker cannot use because a variable
  they need is unset ("missing_credential", from ``unusable_routes``): never called, so their
  breakers never move.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from routing.capability_fit import lacks
from routing.config import DeploymentConfig, TurnoutConfig
from routing.models import Lane, Need, RoutingPolicy, SkipReason
from routing.routes import Order, Route

#: Completion tokens assumed for a cost estimate when the request sets no max_tokens.
DEFAULT_COMPLETION_ESTIMATE = 512

#: The draws of plans that are given no ``rng``: one generator per process, seeded once, rather
#: than a ``random.Random()`` per plan (each of those reads os.urandom to seed a Mersenne
#: Twister: about 20 µs per plan here, measured). Its methods are safe across threads (each
#: draw holds the GIL); a forked child reseeds its own, so sibling processes do not draw alike.
_SHARED_RNG = random.Random()
os.register_at_fork(after_in_child=_SHARED_RNG.seed)


@dataclass(frozen=True)
class PlannedSkip:
    deployment: DeploymentConfig
    reason: SkipReason
    detail: str
    #: The key variable, when the skip concerns one key of a key pool.
    key: str | None = None

    @property
    def target(self) -> str:
        """The deployment, or the route of a key pool's key, that was passed over."""
        return f"{self.deployment.id}/{self.key}" if self.key else self.deployment.id


@dataclass(frozen=True)
class Plan:
    routes: list[Route]
    order: Order = "given"
    skipped: list[PlannedSkip] = field(default_factory=list)
    #: Targets the worker's config does not know (its config changed after submission).
    missing: list[str] = field(default_factory=list)


def estimated_cost(
    deployment: DeploymentConfig, prompt_tokens: int, max_tokens: int | None
) -> float | None:
    return deployment.cost_usd(prompt_tokens, max_tokens or DEFAULT_COMPLETION_ESTIMATE)


def plan_candidates(
    policy: RoutingPolicy,
    config: TurnoutConfig,
    *,
    prompt_tokens: int = 0,
    max_tokens: int | None = None,
    rng: random.Random | None = None,
    unusable: Mapping[str, str] | None = None,
    needs: Sequence[Need] = (),
) -> Plan:
    """``unusable``: route id -> why this worker cannot call it (``unusable_routes``);
    ``needs``: what the request needs of a model (routing.capability_fit)."""
    chance = rng or _SHARED_RNG
    names = config.expand(policy.targets)
    missing = [name for name in names if name not in config.deployments]
    skipped: list[PlannedSkip] = []
    eligible: list[DeploymentConfig] = []
    for deployment in (config.deployments[n] for n in names if n in config.deployments):
        reason = _rule_out(deployment, policy, prompt_tokens, max_tokens, needs)
        if reason is None:
            eligible.append(deployment)
        else:
            skipped.append(PlannedSkip(deployment, *reason))
    order: Order = "given"
    if policy.strategy == "cheapest":
        eligible = _cheapest_first(eligible, prompt_tokens, max_tokens)
    elif policy.strategy == "weighted":
        eligible = _weighted_order(eligible, chance)
    elif policy.strategy == "fastest":
        order = "latency"
    elif policy.strategy == "least_busy":
        order = "inflight"
    routes = []
    for deployment in eligible:
        usable = []
        for route in routes_of(deployment, config, chance, lane=policy.lane or "interactive"):
            if unusable and route.id in unusable:
                pooled = len(deployment.key_envs) > 1
                skip = PlannedSkip(
                    deployment,
                    "missing_credential",
                    f"{route.id}: {unusable[route.id]}" if pooled else unusable[route.id],
                    key=route.key_env if pooled else None,
                )
                skipped.append(skip)
            else:
                usable.append(route)
        routes.extend(usable)
    return Plan(routes, order, skipped, missing)


def unusable_routes(config: TurnoutConfig, is_set: Callable[[str], bool]) -> dict[str, str]:
    """Route id -> why it cannot be called here: "unusable: OPENAI_API_KEY_2 is not set".

    A key pool's route is unusable when its own key is unset; every route of a deployment is,
    when a variable other than a key (an Azure endpoint, say) is unset."""
    missing = config.missing_variables(is_set)
    unusable: dict[str, str] = {}
    for deployment in config.deployments.values():
        own = [m for m in missing if m.deployment is deployment]
        shared = [m.env for m in own if not m.is_key]
        for route in routes_of(deployment, config):
            unset = [*shared, *(m.env for m in own if m.is_key and m.env == route.key_env)]
            if unset:
                verb = "is" if len(unset) == 1 else "are"
                unusable[route.id] = f"unusable: {', '.join(unset)} {verb} not set"
    return unusable


def routes_of(
    deployment: DeploymentConfig,
    config: TurnoutConfig,
    rng: random.Random | None = None,
    *,
    lane: Lane | None = "interactive",
) -> list[Route]:
    """A deployment's routes: one per key of its pool, starting at a random one; a call of
    ``lane`` leaves the other lanes' reserved share of their rate limits alone."""
    breaker = config.breaker_for(deployment)
    keys: list[str | None] = list(deployment.key_envs) or [None]
    start = (rng or _SHARED_RNG).randrange(len(keys))
    rotated = keys[start:] + keys[:start]
    held = deployment.held_back_from(lane)
    return [
        Route(deployment, key, breaker, deployment.rpm, deployment.tpm, held) for key in rotated
    ]


def _rule_out(
    deployment: DeploymentConfig,
    policy: RoutingPolicy,
    prompt_tokens: int,
    max_tokens: int | None,
    needs: Sequence[Need] = (),
) -> tuple[SkipReason, str] | None:
    lacking = lacks(needs, deployment)
    if lacking is not None:
        return "lacks_capability", lacking
    provider = deployment.provider
    if policy.allow_providers is not None and provider not in policy.allow_providers:
        return "denied_by_policy", f"{provider} is not in allow_providers"
    if provider in policy.deny_providers:
        return "denied_by_policy", f"{provider} is in deny_providers"
    window = deployment.model_info.context_window
    needed = prompt_tokens + (max_tokens or 0)
    if policy.context_window_fallback and window is not None and needed > window:
        return "context_too_small", f"needs ~{needed} tokens, the window holds {window}"
    if policy.max_cost_usd is not None:
        cost = estimated_cost(deployment, prompt_tokens, max_tokens)
        if cost is not None and cost > policy.max_cost_usd:
            return "over_budget", f"estimated ${cost:.6f} > max_cost_usd ${policy.max_cost_usd:g}"
    return None


def _cheapest_first(
    deployments: list[DeploymentConfig], prompt_tokens: int, max_tokens: int | None
) -> list[DeploymentConfig]:
    """By estimated cost; unknown prices last, in their given order."""

    def price(d: DeploymentConfig) -> tuple[bool, float]:
        cost = estimated_cost(d, prompt_tokens, max_tokens)
        return (cost is None, cost or 0.0)

    return sorted(deployments, key=price)


def _weighted_order(
    deployments: list[DeploymentConfig], rng: random.Random
) -> list[DeploymentConfig]:
    """A random order where each next pick is proportional to weight (the rest stay fallbacks)."""
    left = list(deployments)
    ordered = []
    while left:
        pick = rng.choices(range(len(left)), weights=[d.weight for d in left])[0]
        ordered.append(left.pop(pick))
    return ordered
