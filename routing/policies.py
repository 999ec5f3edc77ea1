"""Which routing policy a job gets: decided once, at submission, and carried by the job."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence

from pydantic import ValidationError

from routing.config import TurnoutConfig
from routing.errors import InvalidRequest
from routing.models import RoutingPolicy

DEFAULT_POLICY = "default"


def resolve_policy(
    config: TurnoutConfig,
    policy: str | RoutingPolicy | Mapping[str, object] | None = None,
    *,
    targets: Sequence[str] | None = None,
    max_deadline_s: float | None = None,
) -> RoutingPolicy:
    """Turn what the caller said (a policy name, a policy, or bare targets) into a policy whose
    targets all exist in ``config``. Raises InvalidRequest, before anything is enqueued."""
    _check_types(policy, targets)
    if policy is not None and targets:
        raise InvalidRequest("give a policy or targets, not both")
    if targets:
        # The caller named no deadline: take the default, or the longest this stack allows.
        implicit: dict[str, object] = {"targets": list(targets)}
        default_deadline = RoutingPolicy.model_fields["deadline_s"].default
        if max_deadline_s is not None and max_deadline_s < default_deadline:
            implicit["deadline_s"] = max_deadline_s
        resolved = _validated(implicit)
    elif isinstance(policy, RoutingPolicy):
        resolved = policy
    elif isinstance(policy, Mapping):
        resolved = _validated(dict(policy))
    else:
        name = policy or DEFAULT_POLICY
        if name not in config.policies:
            known = ", ".join(sorted(config.policies)) or "none defined"
            hint = "" if policy else " (no policy was given, so 'default' was looked up)"
            raise InvalidRequest(
                f"unknown policy {name!r}{hint}{_did_you_mean(name, config.policies)}"
                f"; policies in {config.source}: {known}"
            )
        resolved = config.policies[name]
    unknown = config.unknown_targets(resolved.targets)
    if unknown:
        names = [*config.deployments, *config.aliases]
        raise InvalidRequest(
            f"unknown deployment{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}"
            + "".join(_did_you_mean(target, names) for target in unknown)
            + f"; deployments in {config.source}: {', '.join(sorted(config.deployments))}"
        )
    if max_deadline_s is not None and resolved.deadline_s > max_deadline_s:
        raise InvalidRequest(
            f"deadline_s {resolved.deadline_s:g} is longer than this stack allows "
            f"({max_deadline_s:g}s, bounded by the broker's visibility timeout)"
        )
    return resolved


def _did_you_mean(value: str, names: Iterable[str]) -> str:
    """``; did you mean 'fast-lane'?`` for a near miss (a typo), else nothing; as the config's
    own errors suggest."""
    close = difflib.get_close_matches(value, sorted(names), n=1)
    return f"; did you mean {close[0]!r} for {value!r}?" if close else ""


def _check_types(policy: object, targets: object) -> None:
    """The caller's arguments have the types they are documented to have: InvalidRequest naming
    the argument otherwise, never a TypeError from deep inside (``targets="a"`` would even be
    read as the deployments 'a' and so on, one per character)."""
    if policy is not None and not isinstance(policy, str | RoutingPolicy | Mapping):
        raise InvalidRequest(
            "policy: a policy name (str), a RoutingPolicy or a dict of its fields is required, "
            f"not {type(policy).__name__}",
            param="policy",
        )
    if targets is None:
        return
    if isinstance(targets, str | bytes) or not isinstance(targets, Sequence):
        raise InvalidRequest(
            f"targets: a list of deployment ids (str) is required, not {type(targets).__name__}",
            param="targets",
        )
    for number, target in enumerate(targets):
        if not isinstance(target, str):
            raise InvalidRequest(
                f"targets[{number}]: a deployment id (str) is required, "
                f"not {type(target).__name__}",
                param="targets",
            )


def _validated(data: dict[str, object]) -> RoutingPolicy:
    try:
        return RoutingPolicy.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(f"invalid routing policy: {exc}") from None
