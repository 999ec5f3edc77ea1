"""Candidate planning: which routes a job may try, in which order, and why others are out.

Pure (no I/O), so every rule is tested without servers. What needs the fleet's live state (the
breaker, rate limits, measured latency, calls in flight) is decided per attempt by a Router
(routing.routes), in the same order this plan gives, or in the order it names ("latency" for the
``fastest`` strategy, "inflight" for ``least_busy``).

Rules applied here, in order, each passed-over target recorded with its reason:
  aliases expanded; ``allow_providers``/``deny_providers`` ("denied_by_policy"); targets whose
  context window cannot hold the estimated prompt plus max_tokens ("context_too_small", when
  ``context_window_fallback``); targets whose estimated cost exceeds ``max_cost_usd``
  ("over_budget"); then the strategy's order; then each deployment's key pool, in a rotated
  order so calls spread across its keys.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from routing.config import DeploymentConfig, TurnoutConfig
from routing.models import RoutingPolicy, SkipReason
from routing.routes import Order, Route

#: Completion tokens assumed for a cost estimate when the request sets no max_tokens.
DEFAULT_COMPLETION_ESTIMATE = 512


@dataclass(frozen=True)
class PlannedSkip:
    deployment: DeploymentConfig
    reason: SkipReason
    detail: str


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
) -> Plan:
    chance = rng or random.Random()
    names = config.expand(policy.targets)
    missing = [name for name in names if name not in config.deployments]
    skipped: list[PlannedSkip] = []
    eligible: list[DeploymentConfig] = []
    for deployment in (config.deployments[n] for n in names if n in config.deployments):
        reason = _rule_out(deployment, policy, prompt_tokens, max_tokens)
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
    routes = [route for d in eligible for route in routes_of(d, config, chance)]
    return Plan(routes, order, skipped, missing)


def routes_of(
    deployment: DeploymentConfig, config: TurnoutConfig, rng: random.Random | None = None
) -> list[Route]:
    """A deployment's routes: one per key of its pool, starting at a random one."""
    breaker = config.breaker_for(deployment)
    keys: list[str | None] = list(deployment.key_envs) or [None]
    start = (rng or random.Random()).randrange(len(keys))
    rotated = keys[start:] + keys[:start]
    return [Route(deployment, key, breaker, deployment.rpm, deployment.tpm) for key in rotated]


def _rule_out(
    deployment: DeploymentConfig,
    policy: RoutingPolicy,
    prompt_tokens: int,
    max_tokens: int | None,
) -> tuple[SkipReason, str] | None:
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
