"""Which targets can take a request that needs tools, a JSON schema, images or reasoning.

OpenRouter's ``require_parameters``, always on: a job that needs a capability goes only to
targets whose model has it (``DeploymentConfig.model_capabilities``: the table and the
deployment's overrides; a capability the table does not know counts as missing until a
deployment says ``capabilities: {tools: true}``) *and* whose protocol turnout translates it to.
A target without one is passed over with ``lacks tools`` in the attempt log; a policy with no
target able to take the job is refused at submit, naming what is missing, before anything is
enqueued. A model that silently ignored ``tools`` or a schema would answer a different
question than the caller asked.

Pure: the producer and the planner both call it.
"""

from __future__ import annotations

from collections.abc import Sequence

from routing.catalog import Protocol
from routing.config import DeploymentConfig, TurnoutConfig
from routing.errors import InvalidRequest
from routing.models import CompletionRequest, Need, RoutingPolicy

#: The protocols whose adapters translate each need (the others send text only, so far).
TRANSLATED: dict[Need, frozenset[Protocol]] = {
    "tools": frozenset({"openai", "azure", "anthropic"}),
    "json_schema": frozenset({"openai", "azure", "anthropic"}),
    "images": frozenset({"openai", "azure", "anthropic"}),
    "reasoning": frozenset({"openai", "azure", "anthropic"}),
}


def lacks(needs: Sequence[Need], deployment: DeploymentConfig) -> str | None:
    """``lacks tools, images: not known for gpt-3.5-turbo`` when ``deployment`` cannot take a
    request needing ``needs``; None when it can."""
    if not needs:
        return None
    capabilities = deployment.model_capabilities
    model = deployment.base_model or deployment.model
    missing: list[str] = []
    reasons: list[str] = []
    for need in needs:
        protocol = deployment.wire_protocol
        if protocol not in TRANSLATED[need]:
            missing.append(need)
            reasons.append(f"turnout's {protocol} adapter does not translate {need} yet")
            continue
        has = getattr(capabilities, _FIELD[need])
        if has is True:
            continue
        missing.append(need)
        reasons.append(
            f"{model} has no {need}"
            if has is False
            else f"{need} not known for {model} (set capabilities.{_FIELD[need]} on the deployment)"
        )
    if not missing:
        return None
    return f"lacks {', '.join(missing)}: {'; '.join(reasons)}"


_FIELD: dict[Need, str] = {
    "tools": "tools",
    "json_schema": "json_schema",
    "images": "images",
    "reasoning": "reasoning_effort",
}


def check_capable(config: TurnoutConfig, policy: RoutingPolicy, request: CompletionRequest) -> None:
    """InvalidRequest when no target of ``policy`` can take ``request`` (what it needs, and why
    each target cannot), before anything is enqueued."""
    needs = request.needs
    if not needs:
        return
    names = config.expand(policy.targets)
    why: list[str] = []
    for name in names:
        deployment = config.deployments.get(name)
        if deployment is None:
            continue
        lacking = lacks(needs, deployment)
        if lacking is None:
            return
        why.append(f"{name} {lacking}")
    raise InvalidRequest(
        f"no target of the policy can take this request, which needs {', '.join(needs)}: "
        + "; ".join(why),
        param=_param_of(needs[0]),
    )


def _param_of(need: Need) -> str:
    return {
        "tools": "tools",
        "json_schema": "response_format",
        "images": "messages",
        "reasoning": "reasoning_effort",
    }[need]
