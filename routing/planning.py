"""Candidate planning: which deployments a job tries, in which order.

Pure: no I/O, so every strategy is tested without servers. Later strategies (cheapest, fastest,
weighted) and breaker state plug in here.
"""

from __future__ import annotations

from dataclasses import dataclass

from routing.config import DeploymentConfig, TurnoutConfig
from routing.models import RoutingPolicy


@dataclass(frozen=True)
class Plan:
    candidates: list[DeploymentConfig]
    #: Targets the worker's config does not know (its config changed after submission).
    missing: list[str]


def plan_candidates(policy: RoutingPolicy, config: TurnoutConfig) -> Plan:
    """``ordered``: the policy's targets, in the order given."""
    candidates = [config.deployments[t] for t in policy.targets if t in config.deployments]
    return Plan(candidates=candidates, missing=config.unknown_targets(policy.targets))
