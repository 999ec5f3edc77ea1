"""The circuit breaker's rules, one per route (deployment + credential), in plain Python.

The fleet-wide breaker runs these same rules in Redis, in one Lua script per transition
(routing/scripts: acquire_route.lua, record_outcome.lua); this module is the reference those
scripts are tested against, and the per-process breaker a worker falls back to when the
breaker's Redis does not answer.

    closed ──(consecutive failures ≥ N, or failure rate ≥ R over the window with ≥ M calls)──► open
    open ──(cool-down passed; a caller or beat's health check asks)──► half_open
        (with ``failback: manual`` it stays open until an operator closes it)
    half_open: a limited number of probe permits, fleet-wide, each expiring after a TTL;
        K probe successes in a row ──► closed    probe failure ──► open again, longer
    closed, its first success after a close ──► "failback": the route serves traffic again

The cool-down doubles with each re-open (base x 2^(reopens-1)), with ±jitter, up to a cap, and the
count of re-opens is forgotten once the route has stayed closed as long as the cap. What counts is
the error class (``breaker_outcome``): transient failures count; auth, permission and unknown-model
errors open the breaker at once, with a long cool-down, until a probe succeeds; a 429 with a
Retry-After cools the route for exactly that long without counting as a failure, and any other
failure with one (a 503's "come back in 3 s") counts and cools it as long; a bad request,
a content-policy refusal or a context-length error is the request's fault, not the route's, and
counts for nothing.

A breaker remembers whether the failures that opened it all found nothing at the route's address
(connection refused, no such host: ``unreachable``, the last such call's message): every failure
since the last success and the last change of state for a count or a rate, the failed probe for a
re-open. A wrong base URL does not mend with a cool-down, so a job does not wait for such a route
(design invariant 7). Any success forgets it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from routing.errors import ErrorClass

BreakerStateName = Literal["closed", "open", "half_open"]
#: What a call's outcome did to its breaker (``record``).
BreakerChange = Literal["opened", "reopened", "closed", "failback", "cooled"]
#: Why a breaker refuses a call now (``allow``).
BreakerRefusal = Literal["open", "no_probe_permit", "cooling"]


#: Why a breaker opened on an auth, permission or unknown-model error: it opens until a probe
#: succeeds, so it does not heal by itself (record_outcome.lua writes the same words).
CREDENTIAL_REJECTED = "credential rejected"
#: How the reason of a breaker opened on a wrong address begins (routing.errors.Misconfigured:
#: "misconfigured: 404 at http://host/v1/chat/completions ..."): it too opens until a probe passes.
MISCONFIGURED = "misconfigured"


def opened_until_probe(why: str) -> bool:
    """Whether a breaker that opened for ``why`` stays open until a probe succeeds (a rejected
    credential, a wrong address) rather than healing with its cool-down."""
    return why == CREDENTIAL_REJECTED or why.startswith(f"{MISCONFIGURED}:")


class BreakerSettings(BaseModel):
    """Thresholds, global in the config's ``breaker:`` and overridable per deployment. The defaults
    are those of well-worn breakers, scaled to LLM traffic (few calls, slow and expensive ones)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    #: Envoy's consecutive_5xx and pybreaker's fail_max: five in a row is no coincidence.
    consecutive_failures: int = Field(default=5, ge=1)
    #: resilience4j's failureRateThreshold (50 %): a route failing half its calls is down.
    failure_rate: float = Field(default=0.5, gt=0, le=1)
    #: The window the rate is measured over; a minute sees a flapping provider.
    window_s: float = Field(default=60.0, ge=1)
    #: resilience4j asks 100 calls; LLM routes see far fewer, and 20 still keeps one bad minute
    #: of a quiet route from opening it.
    min_calls: int = Field(default=20, ge=1)
    #: A success slower than this counts as a failure, toward both the consecutive count and the
    #: rate (off by default: completion times vary widely with the output's length).
    slow_call_s: float | None = Field(default=None, gt=0)
    #: Envoy's base_ejection_time (30 s), doubled per re-open up to max_ejection_time (300 s);
    #: the jitter applies after the cap.
    cooldown_s: float = Field(default=30.0, gt=0)
    cooldown_max_s: float = Field(default=300.0, gt=0)
    #: ± this share of the cool-down, so routes a fleet opened together do not all retry at once.
    cooldown_jitter: float = Field(default=0.2, ge=0, lt=1)
    #: Probes allowed at once in half-open, fleet-wide (resilience4j's are per process).
    half_open_permits: int = Field(default=1, ge=1)
    #: A probe permit expires after this, so a hung probe cannot keep the route half-open forever
    #: (resilience4j #903); longer than any attempt timeout.
    probe_ttl_s: float = Field(default=120.0, gt=0)
    #: Cool-down after an auth, permission or unknown-model error: a key does not fix itself
    #: in seconds; a probe after this (or an operator) closes it.
    auth_cooldown_s: float = Field(default=300.0, gt=0)
    #: Probe successes in a row that close a half-open breaker: one answer from a provider that
    #: is falling over proves little; two, apart in time, are hysteresis against flapping.
    close_after: int = Field(default=2, ge=1)
    #: ``auto``: probes (jobs' or beat's health checks) close it; ``manual``: it stays open past
    #: its cool-down until ``turnout breaker close ID`` (health checks still report on it).
    failback: Literal["auto", "manual"] = "auto"

    @model_validator(mode="after")
    def _cap_not_below_base(self) -> BreakerSettings:
        if self.cooldown_max_s < self.cooldown_s:
            raise ValueError(
                f"cooldown_max_s ({self.cooldown_max_s:g}) is below cooldown_s "
                f"({self.cooldown_s:g}): every cool-down would be the cap"
            )
        return self

    def merged(self, overrides: BreakerOverrides | None) -> BreakerSettings:
        """These settings with a deployment's overrides, validated together."""
        if overrides is None:
            return self
        return BreakerSettings.model_validate(
            {**self.model_dump(), **overrides.model_dump(exclude_none=True)}
        )


class BreakerOverrides(BaseModel):
    """A deployment's changes to the global thresholds (every field optional)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    consecutive_failures: int | None = Field(default=None, ge=1)
    failure_rate: float | None = Field(default=None, gt=0, le=1)
    window_s: float | None = Field(default=None, ge=1)
    min_calls: int | None = Field(default=None, ge=1)
    slow_call_s: float | None = Field(default=None, gt=0)
    cooldown_s: float | None = Field(default=None, gt=0)
    cooldown_max_s: float | None = Field(default=None, gt=0)
    cooldown_jitter: float | None = Field(default=None, ge=0, lt=1)
    half_open_permits: int | None = Field(default=None, ge=1)
    probe_ttl_s: float | None = Field(default=None, gt=0)
    auth_cooldown_s: float | None = Field(default=None, gt=0)
    close_after: int | None = Field(default=None, ge=1)
    failback: Literal["auto", "manual"] | None = None


class Outcome(StrEnum):
    """What one call means to its route's breaker."""

    SUCCESS = "success"
    FAILURE = "failure"
    #: auth, permission, model_not_found, configuration: open now, until a probe succeeds.
    CREDENTIAL = "credential"
    #: 429 with Retry-After: cool for exactly that long; not a failure.
    COOL = "cool"
    #: the request's own fault (bad_request, content_policy, context_length,
    #: unsupported_parameter), or an answer the budget cut short (incomplete): counts for nothing.
    IGNORE = "ignore"


_CREDENTIAL = frozenset(
    {
        ErrorClass.AUTH,
        ErrorClass.PERMISSION,
        ErrorClass.MODEL_NOT_FOUND,
        ErrorClass.CONFIGURATION,
    }
)
_IGNORED = frozenset(
    {
        ErrorClass.BAD_REQUEST,
        ErrorClass.CONTENT_POLICY,
        ErrorClass.CONTEXT_LENGTH,
        # the model refuses a parameter: the route is healthy, the request was not for it
        ErrorClass.UNSUPPORTED_PARAMETER,
        ErrorClass.INCOMPLETE,
        # the reply did not match the request's schema: the model's doing, the route served it
        ErrorClass.INVALID_OUTPUT,
    }
)


def breaker_outcome(
    error_class: ErrorClass | None,
    *,
    latency_s: float,
    retry_after_s: float | None,
    settings: BreakerSettings,
) -> Outcome:
    if error_class is None:
        slow = settings.slow_call_s is not None and latency_s > settings.slow_call_s
        return Outcome.FAILURE if slow else Outcome.SUCCESS
    if error_class is ErrorClass.RATE_LIMITED and retry_after_s is not None and retry_after_s > 0:
        # "Retry-After: 0" cools nothing: it is a rate limit like any other.
        return Outcome.COOL
    if error_class in _CREDENTIAL:
        return Outcome.CREDENTIAL
    if error_class in _IGNORED:
        return Outcome.IGNORE
    return Outcome.FAILURE


@dataclass
class BreakerState:
    """One route's breaker (times in seconds on one clock: Redis's in the fleet)."""

    state: BreakerStateName = "closed"
    consecutive: int = 0
    open_until: float = 0.0
    reopens: int = 0
    closed_at: float = 0.0
    cool_until: float = 0.0
    reason: str = ""
    #: when the state last changed
    changed_at: float = 0.0
    #: probe successes in a row while half-open
    probe_successes: int = 0
    #: closed by probes, and no call has succeeded on it since: the next success is the failback
    failback_pending: bool = False
    #: while closed: the last failure's message if every failure since the last success (or
    #: change of state) found nothing at the address; once open: what opened it, if so ("" not)
    unreachable: str = ""
    #: probe id -> when its permit expires
    probes: dict[str, float] = field(default_factory=dict)
    #: window bucket index -> (calls, failures)
    buckets: dict[int, tuple[int, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    probe: bool = False
    #: why not ("" when allowed)
    reason: BreakerRefusal | Literal[""] = ""
    #: when to look again: when it may allow again, or for no_probe_permit at most PROBE_POLL_S
    #: from now (the probe usually answers long before its permit expires)
    retry_at: float | None = None
    #: why the breaker opened ("5 consecutive failures", "credential rejected", ...)
    why: str = ""
    #: this call to allow() moved the breaker from open to half-open
    became_half_open: bool = False
    #: open because nothing answers at its address: the message of the call that found it so
    unreachable: str = ""


#: The window is counted in this many buckets.
WINDOW_BUCKETS = 10


def allow(
    state: BreakerState,
    settings: BreakerSettings,
    now: float,
    probe_id: str,
    *,
    probe_ttl_s: float | None = None,
) -> Verdict:
    """May a call go to this route now? Moves open to half-open when the cool-down has passed and
    takes a probe permit for the caller when half-open, held ``probe_ttl_s`` (default: the
    settings'): the caller passes one longer than its call can take."""
    if state.cool_until > now:
        return Verdict(False, reason="cooling", retry_at=state.cool_until)
    became_half_open = False
    if state.state == "open":
        if now < state.open_until:
            return Verdict(
                False,
                reason="open",
                retry_at=state.open_until,
                why=state.reason,
                unreachable=state.unreachable,
            )
        if settings.failback == "manual":
            return Verdict(
                False,
                reason="open",
                why=f"{state.reason}; failback is manual",
                unreachable=state.unreachable,
            )
        state.state, state.changed_at, state.probe_successes = "half_open", now, 0
        state.probes.clear()
        became_half_open = True
    if state.state == "half_open":
        state.probes = {pid: until for pid, until in state.probes.items() if until > now}
        if len(state.probes) >= settings.half_open_permits:
            look_again = min(min(state.probes.values()), now + PROBE_POLL_S)
            return Verdict(
                False,
                reason="no_probe_permit",
                retry_at=look_again,
                became_half_open=became_half_open,
            )
        ttl = settings.probe_ttl_s if probe_ttl_s is None else probe_ttl_s
        state.probes[probe_id] = now + ttl
        return Verdict(True, probe=True, became_half_open=became_half_open)
    return Verdict(True)


#: A route whose probe permits are taken is looked at again this soon (the Lua's PROBE_POLL).
PROBE_POLL_S = 1.0

#: A route down for days re-opens thousands of times; the cap is reached long before this.
MAX_DOUBLINGS = 32


def cooldown(settings: BreakerSettings, reopens: int, jitter: float) -> float:
    """The cool-down of the ``reopens``-th opening; ``jitter`` is uniform in [0, 1)."""
    doublings = min(max(reopens - 1, 0), MAX_DOUBLINGS)
    base = min(settings.cooldown_max_s, settings.cooldown_s * 2.0**doublings)
    return float(base * (1 + settings.cooldown_jitter * (2 * jitter - 1)))


def record(
    state: BreakerState,
    settings: BreakerSettings,
    now: float,
    outcome: Outcome,
    *,
    probe_id: str,
    retry_after_s: float | None = None,
    jitter: float = 0.5,
    unreachable: str = "",
    open_reason: str = "",
) -> BreakerChange | None:
    """Apply one call's outcome; returns the transition it caused ("opened", "closed",
    "reopened", "cooled", "failback") or None. ``unreachable``: the call found nothing at the
    route's address, and this is what it said ("" otherwise). ``open_reason``: why a
    CREDENTIAL outcome opens it, when not a rejected credential (a wrong address)."""
    was_probe = state.probes.pop(probe_id, None) is not None
    if outcome is Outcome.IGNORE:
        return None
    if outcome is Outcome.COOL:
        state.cool_until = max(state.cool_until, now + (retry_after_s or 0.0))
        return "cooled"
    if outcome is Outcome.CREDENTIAL:
        state.unreachable = ""
        why = open_reason or CREDENTIAL_REJECTED
        if state.state == "open":  # already open: keep it shut for the credential's cool-down
            state.open_until = max(state.open_until, now + settings.auth_cooldown_s)
            state.reason = why
            return None
        return _open(state, settings, now, why, settings.auth_cooldown_s)
    if outcome is Outcome.SUCCESS:
        _count(state, settings, now, failed=False)
        state.consecutive = 0
        state.unreachable = ""
        if state.state == "half_open" and was_probe:
            state.probe_successes += 1
            if state.probe_successes < settings.close_after:
                return None
            state.state, state.closed_at, state.reason = "closed", now, ""
            state.changed_at, state.probe_successes, state.failback_pending = now, 0, True
            state.buckets.clear()
            return "closed"
        if state.state == "closed" and state.failback_pending:
            state.failback_pending = False
            return "failback"
        return None
    # A failure. One that named a Retry-After also keeps every caller away that long: the
    # server said when it will take calls again (RFC 9110 §10.2.3), whatever the breaker counts.
    if retry_after_s is not None and retry_after_s > 0:
        state.cool_until = max(state.cool_until, now + retry_after_s)
    if state.state == "half_open":
        if not was_probe:
            return None  # a call let through before the trip; the probes decide
        state.unreachable = unreachable
        return _open(state, settings, now, "probe failed", None, jitter=jitter)
    if state.state == "open":
        return None  # in flight when the route opened
    first = state.consecutive == 0
    state.unreachable = unreachable if unreachable and (first or state.unreachable) else ""
    state.consecutive += 1
    calls, failures = _count(state, settings, now, failed=True)
    if state.consecutive >= settings.consecutive_failures:
        return _open(
            state, settings, now, f"{state.consecutive} consecutive failures", None, jitter=jitter
        )
    if calls >= settings.min_calls and failures / calls >= settings.failure_rate:
        return _open(
            state, settings, now, f"{failures} of {calls} calls failed", None, jitter=jitter
        )
    return None


def _open(
    state: BreakerState,
    settings: BreakerSettings,
    now: float,
    reason: str,
    fixed_cooldown_s: float | None,
    *,
    jitter: float = 0.5,
) -> BreakerChange:
    transition: BreakerChange = "reopened" if state.state == "half_open" else "opened"
    if state.state == "closed" and now - state.closed_at >= settings.cooldown_max_s:
        state.reopens = 0  # closed long enough: start the escalation again
    state.reopens += 1
    wait = (
        fixed_cooldown_s
        if fixed_cooldown_s is not None
        else cooldown(settings, state.reopens, jitter)
    )
    state.state, state.open_until, state.reason = "open", now + wait, reason
    state.changed_at, state.probe_successes, state.failback_pending = now, 0, False
    state.consecutive = 0
    state.probes.clear()
    state.buckets.clear()
    return transition


def _count(
    state: BreakerState, settings: BreakerSettings, now: float, *, failed: bool
) -> tuple[int, int]:
    """Add one call to the window; returns the window's (calls, failures)."""
    width = settings.window_s / WINDOW_BUCKETS
    current = int(now // width)
    oldest = current - WINDOW_BUCKETS + 1
    state.buckets = {b: v for b, v in state.buckets.items() if b >= oldest}
    calls, failures = state.buckets.get(current, (0, 0))
    state.buckets[current] = (calls + 1, failures + (1 if failed else 0))
    return (
        sum(c for c, _ in state.buckets.values()),
        sum(f for _, f in state.buckets.values()),
    )
