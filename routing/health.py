"""Health checks: how often beat checks each deployment, with what, and what a result means.

Beat checks every deployment (each key of a pool) every ``every_s``: by default with the
provider's free credential probe (a models list, a token count: no tokens spent), or with a
one-token completion where ``probe: completion`` says so (it proves the completions path, at a
price). A route is ``failing`` after ``failing_after`` failed checks in a row and ``ok`` after
one success; routing puts failing routes after healthy ones (never out: when every route looks
unhealthy, jobs still try them). A route whose breaker is open past its cool-down is checked as
its half-open probe: the check's outcome moves the breaker, so a provider that recovered wins
its traffic back (failback) without waiting for a job to try it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ProbeKind = Literal["credential", "completion"]


class HealthSettings(BaseModel):
    """The config's ``health:`` section; each deployment may override it (``health:`` there)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    #: Seconds between two checks of one route, fleet-wide (however many beats run).
    every_s: float = Field(default=30.0, ge=1)
    #: ``credential``: the provider's free authenticated probe; ``completion``: a 1-token
    #: completion (proves the completions path, costs a token).
    probe: ProbeKind = "credential"
    #: Failed checks in a row after which routing puts the route last.
    failing_after: int = Field(default=2, ge=1)
    #: One check's timeout.
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    #: False: never check this deployment.
    enabled: bool = True

    def merged(self, overrides: HealthOverrides | None) -> HealthSettings:
        if overrides is None:
            return self
        return HealthSettings.model_validate(
            {**self.model_dump(), **overrides.model_dump(exclude_none=True)}
        )


class HealthOverrides(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    every_s: float | None = Field(default=None, ge=1)
    probe: ProbeKind | None = None
    failing_after: int | None = Field(default=None, ge=1)
    timeout_s: float | None = Field(default=None, gt=0, le=120)
    enabled: bool | None = None
