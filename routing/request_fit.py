"""Fitting a request to one target's model: which parameters it must go without, or whether the
target cannot take the request at all.

Pure. What a model accepts comes from the table and the deployment's overrides
(``DeploymentConfig.model_capabilities``) and from what the fleet learnt from its refusals
(``ParameterLessons``: Redis in a worker, ``LocalLessons`` here). The policy's
``unsupported_parameters`` decides what a refused parameter costs:

* ``drop`` (the default): the target gets the request without it, and the attempt log says
  "dropped temperature: not accepted by o3". A sampling knob or a stop sequence is a preference
  the caller would rather lose than lose the answer;
* ``skip``: the target is passed over (``unsupported_parameter``);
* ``fail``: the job fails at once, naming the parameter.

A conversation that ends with an assistant turn (prefill) is never cut down to fit: the prefill
is content, the start of the answer the caller wants continued, and the reply of a model sent the
conversation without it would not continue it (a caller joining prefill and reply would get a
wrong text). A model that refuses prefill is passed over instead, whatever the policy says, and a
job none of whose targets takes it fails as ``unsupported_parameter``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from routing.capabilities import ASSISTANT_PREFILL, PARAMETERS
from routing.config import DeploymentConfig
from routing.models import CompletionRequest

Mode = Literal["drop", "skip", "fail"]


class ParameterLessons(Protocol):
    """What the fleet learnt its models refuse, from their 400s: parameter -> the refusal."""

    def refused(self, deployment: DeploymentConfig) -> Mapping[str, str]: ...

    def learn(self, deployment: DeploymentConfig, parameter: str, message: str) -> None: ...


def lesson_subject(deployment: DeploymentConfig) -> tuple[str, str]:
    """Whose lesson it is: the provider and the model, so every deployment of that model on that
    provider (every key, every worker) profits from one refusal."""
    return deployment.provider.lower(), (deployment.base_model or deployment.model).lower()


class LocalLessons:
    """Lessons kept in this process only (a worker without Redis for them, unit tests)."""

    def __init__(self) -> None:
        self._refused: dict[tuple[str, str], dict[str, str]] = {}

    def refused(self, deployment: DeploymentConfig) -> Mapping[str, str]:
        return dict(self._refused.get(lesson_subject(deployment), {}))

    def learn(self, deployment: DeploymentConfig, parameter: str, message: str) -> None:
        self._refused.setdefault(lesson_subject(deployment), {})[parameter] = message


@dataclass(frozen=True)
class Dropped:
    parameter: str
    reason: str

    def describe(self) -> str:
        return f"dropped {self.parameter}: {self.reason}"


@dataclass(frozen=True)
class Fit:
    """The request as this target gets it, or why it cannot get it."""

    request: CompletionRequest
    dropped: tuple[Dropped, ...] = ()
    #: The parameter that rules this target out (None: the target can take ``request``).
    refused: str | None = None
    #: With ``refused``: why, for the attempt log and the job's error.
    detail: str = ""
    #: The policy says the job fails rather than go without ``refused``.
    fails_job: bool = False

    @property
    def note(self) -> str | None:
        """What the attempt log says about the parameters dropped, if any."""
        return "; ".join(d.describe() for d in self.dropped) or None


def parameters_set(request: CompletionRequest) -> list[str]:
    """The optional parameters the request sets, and prefill when it ends with an assistant
    turn."""
    present: list[str] = [p for p in PARAMETERS if getattr(request, p) not in (None, [])]
    if request.messages[-1].role == "assistant":
        present.append(ASSISTANT_PREFILL)
    return present


def fit_request(
    request: CompletionRequest,
    deployment: DeploymentConfig,
    *,
    mode: Mode,
    learnt: Mapping[str, str],
) -> Fit:
    """The request without what ``deployment``'s model refuses, or the refusal that rules it
    out (see the module docstring)."""
    wanted = parameters_set(request)
    if not wanted:
        return Fit(request)
    capabilities = deployment.model_capabilities.refusing(frozenset(learnt))
    model = deployment.model
    dropped: list[Dropped] = []
    for parameter in wanted:
        if capabilities.accepts(parameter):
            continue
        reason = (
            f"refused by {model} ({learnt[parameter]})"
            if parameter in learnt
            else f"not accepted by {model}"
        )
        if parameter == ASSISTANT_PREFILL:
            return Fit(
                request,
                refused=parameter,
                detail=f"{model} does not accept a conversation ending with an assistant "
                f"turn (prefill): {reason}",
                fails_job=mode == "fail",
            )
        if mode != "drop":
            return Fit(
                request,
                refused=parameter,
                detail=f"{parameter} {reason} (unsupported_parameters: {mode})",
                fails_job=mode == "fail",
            )
        dropped.append(Dropped(parameter, reason))
    if not dropped:
        return Fit(request)
    fitted = request.model_copy(update={d.parameter: None for d in dropped})
    return Fit(fitted, tuple(dropped))
