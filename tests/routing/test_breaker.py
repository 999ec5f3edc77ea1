"""The breaker's rules as pure functions, on an explicit clock: what each error class means to a
route, how the cool-down grows and spreads, the window, half-open permits, credential errors and
Retry-After, and the settings' validation. The scenarios both routers must agree on (Lua on Redis
and this module) are in test_fleet_routers.py; these are the edges those scenarios do not reach."""

import pytest
from pydantic import ValidationError

from routing.breaker import (
    PROBE_POLL_S,
    WINDOW_BUCKETS,
    BreakerOverrides,
    BreakerSettings,
    BreakerState,
    Outcome,
    allow,
    breaker_outcome,
    cooldown,
    record,
)
from routing.errors import PROVIDER_ERRORS, ErrorClass

#: No jitter, so every cool-down is exact: 30, 60, 120, 240, then the 300 s cap.
SETTINGS = BreakerSettings(
    consecutive_failures=5,
    failure_rate=0.5,
    window_s=60,
    min_calls=20,
    cooldown_s=30,
    cooldown_max_s=300,
    cooldown_jitter=0.0,
    half_open_permits=1,
    probe_ttl_s=120,
    auth_cooldown_s=500,
    close_after=1,  # one probe success closes, unless a test says otherwise
)
#: A clock reading on a window bucket's edge (the window's tenths are 6 s wide).
T0 = 600_000.0
WIDTH = SETTINGS.window_s / WINDOW_BUCKETS


def settings(**changes):
    return SETTINGS.model_copy(update=changes)


#: The rate alone decides: half the calls failed, once the window has 4.
RATE = settings(consecutive_failures=10, min_calls=4)


def fail(state, now, s=SETTINGS, *, probe_id="call", jitter=0.5):
    return record(state, s, now, Outcome.FAILURE, probe_id=probe_id, jitter=jitter)


def succeed(state, now, s=SETTINGS, *, probe_id="call"):
    return record(state, s, now, Outcome.SUCCESS, probe_id=probe_id)


def half_open(*, reopens=1, at=T0, s=SETTINGS):
    """A route whose cool-down ran out at ``at``, where one caller ("probe") took a permit then."""
    state = BreakerState(
        state="open", open_until=at, reopens=reopens, reason="5 consecutive failures"
    )
    verdict = allow(state, s, at, "probe")
    assert (verdict.allowed, verdict.probe, state.state) == (True, True, "half_open")
    return state


# What a call means to its route


OUTCOMES = {
    ErrorClass.RATE_LIMITED: Outcome.FAILURE,  # without a Retry-After: an ordinary failure
    ErrorClass.OVERLOADED: Outcome.FAILURE,
    ErrorClass.SERVER_ERROR: Outcome.FAILURE,
    ErrorClass.TIMEOUT: Outcome.FAILURE,
    ErrorClass.CONNECTION: Outcome.FAILURE,
    ErrorClass.INVALID_RESPONSE: Outcome.FAILURE,
    ErrorClass.AUTH: Outcome.CREDENTIAL,
    ErrorClass.PERMISSION: Outcome.CREDENTIAL,
    ErrorClass.MODEL_NOT_FOUND: Outcome.CREDENTIAL,
    ErrorClass.BAD_REQUEST: Outcome.IGNORE,
    ErrorClass.CONTENT_POLICY: Outcome.IGNORE,
    ErrorClass.CONTEXT_LENGTH: Outcome.IGNORE,
    ErrorClass.UNSUPPORTED_PARAMETER: Outcome.IGNORE,  # the route is healthy
    ErrorClass.INCOMPLETE: Outcome.IGNORE,  # the budget ran out thinking: the route is fine
    ErrorClass.INVALID_OUTPUT: Outcome.IGNORE,  # missed its schema: the model
    ErrorClass.CONFIGURATION: Outcome.CREDENTIAL,  # a wrong address: open until a probe passes
}


@pytest.mark.parametrize(("error_class", "expected"), OUTCOMES.items())
def test_each_provider_error_class_means_one_outcome(error_class, expected):
    outcome = breaker_outcome(error_class, latency_s=1.0, retry_after_s=None, settings=SETTINGS)
    assert outcome is expected


def test_every_provider_error_class_has_its_outcome_decided():
    assert set(OUTCOMES) == set(PROVIDER_ERRORS)


@pytest.mark.parametrize(
    ("error_class", "retry_after_s", "expected"),
    [
        (ErrorClass.RATE_LIMITED, 20.0, Outcome.COOL),
        (ErrorClass.RATE_LIMITED, 0.0, Outcome.FAILURE),  # "Retry-After: 0" cools nothing
        (ErrorClass.OVERLOADED, 20.0, Outcome.FAILURE),
        (ErrorClass.SERVER_ERROR, 20.0, Outcome.FAILURE),
        (ErrorClass.AUTH, 20.0, Outcome.CREDENTIAL),
        (ErrorClass.BAD_REQUEST, 20.0, Outcome.IGNORE),
    ],
)
def test_only_a_429_with_a_retry_after_cools(error_class, retry_after_s, expected):
    outcome = breaker_outcome(
        error_class, latency_s=1.0, retry_after_s=retry_after_s, settings=SETTINGS
    )
    assert outcome is expected


def test_a_slow_success_is_a_success_while_slow_calls_are_off():
    assert SETTINGS.slow_call_s is None
    outcome = breaker_outcome(None, latency_s=3600.0, retry_after_s=None, settings=SETTINGS)
    assert outcome is Outcome.SUCCESS


@pytest.mark.parametrize(
    ("latency_s", "expected"),
    [(9.99, Outcome.SUCCESS), (10.0, Outcome.SUCCESS), (10.01, Outcome.FAILURE)],
)
def test_a_success_slower_than_slow_call_s_counts_as_a_failure(latency_s, expected):
    s = settings(slow_call_s=10.0)
    outcome = breaker_outcome(None, latency_s=latency_s, retry_after_s=None, settings=s)
    assert outcome is expected


@pytest.mark.parametrize(
    ("error_class", "retry_after_s", "expected"),
    [
        (ErrorClass.BAD_REQUEST, None, Outcome.IGNORE),
        (ErrorClass.AUTH, None, Outcome.CREDENTIAL),
        (ErrorClass.RATE_LIMITED, 5.0, Outcome.COOL),
        (ErrorClass.TIMEOUT, None, Outcome.FAILURE),
    ],
)
def test_a_slow_error_means_what_its_class_means(error_class, retry_after_s, expected):
    s = settings(slow_call_s=10.0)
    outcome = breaker_outcome(error_class, latency_s=100.0, retry_after_s=retry_after_s, settings=s)
    assert outcome is expected


# The cool-down


@pytest.mark.parametrize(
    ("reopens", "expected"),
    [(0, 30), (1, 30), (2, 60), (3, 120), (4, 240), (5, 300), (6, 300), (50, 300)],
)
def test_the_cool_down_doubles_with_each_reopen_up_to_the_cap(reopens, expected):
    assert cooldown(SETTINGS, reopens, 0.5) == expected


def test_a_route_down_for_days_keeps_the_capped_cool_down():
    """Reopens only reset after the route stays closed, so a dead route's count keeps growing:
    one opening per 5 minutes is over a thousand in four days."""
    assert cooldown(SETTINGS, 1025, 0.5) == 300
    assert cooldown(SETTINGS, 5000, 0.5) == 300
    state = half_open(reopens=5000)
    assert fail(state, T0 + 1, probe_id="probe") == "reopened"
    assert state.open_until == T0 + 1 + 300


@pytest.mark.parametrize(
    ("reopens", "jitter", "expected"),
    [
        (1, 0.0, 30 * 0.8),
        (1, 0.5, 30),
        (1, 1.0, 30 * 1.2),
        (3, 0.0, 120 * 0.8),
        (3, 0.75, 120 * 1.1),
        (10, 0.0, 300 * 0.8),
        (10, 1.0, 300 * 1.2),
    ],
)
def test_jitter_spreads_the_cool_down_by_exactly_its_share(reopens, jitter, expected):
    """± cooldown_jitter around the (capped) base: jitter 0 is the shortest, 1 the longest."""
    s = settings(cooldown_jitter=0.2)
    assert cooldown(s, reopens, jitter) == pytest.approx(expected)


def test_an_opening_waits_the_cool_down_its_jitter_draws():
    s = settings(cooldown_jitter=0.2)
    state = BreakerState()
    transitions = [fail(state, T0, s, jitter=0.0) for _ in range(5)]
    assert transitions == [None, None, None, None, "opened"]
    assert state.open_until == pytest.approx(T0 + 24)


# The failure rate and its window


def test_the_rate_waits_for_min_calls_in_the_window():
    state = BreakerState()
    assert [fail(state, T0, RATE) for _ in range(3)] == [None, None, None], "3 of 3: too few"
    assert fail(state, T0, RATE) == "opened"
    assert state.reason == "4 of 4 calls failed"


def test_the_rate_opens_at_the_threshold_not_below_it():
    state = BreakerState()
    for _ in range(3):
        succeed(state, T0, RATE)
    assert fail(state, T0 + 1, RATE) is None, "1 of 4"
    assert fail(state, T0 + 2, RATE) is None, "2 of 5 is under half"
    assert fail(state, T0 + 3, RATE) == "opened", "3 of 6 is half"
    assert state.reason == "3 of 6 calls failed"


@pytest.mark.parametrize(
    ("first_at", "later_at", "still_counted"),
    [
        (0.0, 10 * WIDTH - 0.1, True),  # 59.9 s later: in the window's oldest tenth
        (0.0, 10 * WIDTH, False),  # its tenth has left the window
        (WIDTH - 0.1, 10 * WIDTH, False),  # windowed by tenths: gone 54.1 s later
    ],
)
def test_calls_older_than_the_window_stop_counting(first_at, later_at, still_counted):
    state = BreakerState()
    assert fail(state, T0 + first_at, RATE) is None
    assert fail(state, T0 + first_at, RATE) is None
    assert fail(state, T0 + later_at, RATE) is None
    change = fail(state, T0 + later_at, RATE)
    if still_counted:
        assert (change, state.reason) == ("opened", "4 of 4 calls failed")
    else:
        assert change is None, "only the 2 recent failures count: under min_calls"


def test_a_closed_route_starts_with_an_empty_window():
    state = half_open(s=RATE)
    for _ in range(11):
        succeed(state, T0 + 1, RATE, probe_id="straggler")  # counted, but does not close
    assert succeed(state, T0 + 2, RATE, probe_id="probe") == "closed"
    assert [fail(state, T0 + 3, RATE) for _ in range(3)] == [None, None, None]
    assert fail(state, T0 + 3, RATE) == "opened", "4 of 4, not 4 of 16"
    assert state.reason == "4 of 4 calls failed"


def test_ignored_errors_and_retry_afters_do_not_break_a_streak():
    state = BreakerState()
    for _ in range(4):
        fail(state, T0)
    assert record(state, SETTINGS, T0, Outcome.IGNORE, probe_id="call") is None
    assert record(state, SETTINGS, T0, Outcome.COOL, probe_id="call", retry_after_s=0.5)
    assert state.consecutive == 4
    assert fail(state, T0 + 1) == "opened"
    assert state.reason == "5 consecutive failures"


# Escalation, and forgetting it


def test_a_failed_probe_reopens_for_longer_each_time_up_to_the_cap():
    state = BreakerState()
    for _ in range(5):
        fail(state, T0)
    now, waits = T0, [state.open_until - T0]
    for _ in range(5):
        now = state.open_until
        assert allow(state, SETTINGS, now, "probe").probe
        assert fail(state, now, probe_id="probe") == "reopened"
        assert state.reason == "probe failed"
        waits.append(state.open_until - now)
    assert waits == [30, 60, 120, 240, 300, 300]


def test_a_probe_success_closes_but_a_quick_relapse_keeps_escalating():
    state = half_open(reopens=3)
    assert succeed(state, T0 + 1, probe_id="probe") == "closed"
    assert (state.state, state.closed_at, state.reason) == ("closed", T0 + 1, "")
    for _ in range(5):
        fail(state, T0 + 100)
    assert state.reopens == 4
    assert state.open_until == T0 + 100 + 240


@pytest.mark.parametrize(
    ("closed_for", "reopens", "wait"),
    [
        (SETTINGS.cooldown_max_s - 0.001, 4, 240),
        (SETTINGS.cooldown_max_s, 1, 30),
        (7 * 24 * 3600, 1, 30),  # failed last week: starts again at the base
    ],
)
def test_the_escalation_is_forgotten_once_closed_as_long_as_the_cap(closed_for, reopens, wait):
    state = BreakerState(state="closed", reopens=3, closed_at=T0)
    for _ in range(5):
        fail(state, T0 + closed_for)
    assert state.state == "open"
    assert state.reopens == reopens
    assert state.open_until == T0 + closed_for + wait


# Open and half-open


def test_open_turns_half_open_exactly_when_the_cool_down_ends():
    state = BreakerState(
        state="open", open_until=T0 + 30, reopens=1, reason="5 consecutive failures"
    )
    verdict = allow(state, SETTINGS, T0 + 29.999, "early")
    assert (verdict.allowed, verdict.reason, verdict.retry_at) == (False, "open", T0 + 30)
    assert verdict.why == "5 consecutive failures"
    assert (state.state, state.probes) == ("open", {}), "a refusal takes nothing"
    verdict = allow(state, SETTINGS, T0 + 30, "probe")
    assert (verdict.allowed, verdict.probe) == (True, True)
    assert state.state == "half_open"


def test_half_open_grants_at_most_its_permits():
    s = settings(half_open_permits=3)
    state = half_open(s=s)
    assert allow(state, s, T0 + 1, "second").probe
    assert allow(state, s, T0 + 2, "third").probe
    verdict = allow(state, s, T0 + 3, "fourth")
    assert (verdict.allowed, verdict.reason) == (False, "no_probe_permit")
    assert verdict.retry_at == T0 + 3 + PROBE_POLL_S, "look again soon: probes answer early"
    expiring = allow(state, s, T0 + SETTINGS.probe_ttl_s - 0.5, "fifth")
    assert expiring.retry_at == T0 + SETTINGS.probe_ttl_s, "or when the oldest permit expires"


def test_an_expired_probe_permit_frees_its_slot():
    state = half_open()
    verdict = allow(state, SETTINGS, T0 + 119.999, "next")
    assert (verdict.allowed, verdict.reason) == (False, "no_probe_permit")
    verdict = allow(state, SETTINGS, T0 + 120, "next")
    assert (verdict.allowed, verdict.probe) == (True, True)


def test_a_hung_probe_that_lost_its_permit_cannot_close_the_route():
    state = half_open()
    assert allow(state, SETTINGS, T0 + 120, "next").probe
    assert succeed(state, T0 + 130, probe_id="probe") is None
    assert state.state == "half_open"
    assert succeed(state, T0 + 131, probe_id="next") == "closed"


def test_the_caller_may_hold_its_probe_longer_than_the_settings_say():
    state = BreakerState(state="open", open_until=T0, reopens=1)
    assert allow(state, SETTINGS, T0, "probe", probe_ttl_s=600).probe
    verdict = allow(state, SETTINGS, T0 + SETTINGS.probe_ttl_s, "next")
    assert not verdict.allowed, "its permit holds past the settings' TTL"
    assert allow(state, SETTINGS, T0 + 599, "next").reason == "no_probe_permit"
    assert allow(state, SETTINGS, T0 + 600, "next").probe


def test_only_a_probe_success_closes_half_open():
    state = half_open()
    assert succeed(state, T0 + 1, probe_id="straggler") is None, "let through before the trip"
    assert state.state == "half_open"
    assert not allow(state, SETTINGS, T0 + 2, "next").allowed, "the probe still holds its permit"
    assert succeed(state, T0 + 3, probe_id="probe") == "closed"


def test_only_a_probe_failure_reopens_half_open():
    state = half_open()
    assert fail(state, T0 + 1, probe_id="straggler") is None
    assert (state.state, state.reopens) == ("half_open", 1)
    assert fail(state, T0 + 2, probe_id="probe") == "reopened"
    assert (state.state, state.reopens, state.open_until) == ("open", 2, T0 + 2 + 60)


@pytest.mark.parametrize(
    ("outcome", "retry_after_s"), [(Outcome.IGNORE, None), (Outcome.COOL, 0.0)]
)
def test_a_probe_that_decides_nothing_gives_its_permit_back(outcome, retry_after_s):
    state = half_open()
    record(state, SETTINGS, T0 + 1, outcome, probe_id="probe", retry_after_s=retry_after_s)
    assert state.state == "half_open"
    assert allow(state, SETTINGS, T0 + 2, "next").probe


# Credential errors


@pytest.mark.parametrize(
    ("open_until", "expected"),
    [(T0 + 10, T0 + 500), (T0 + 1000, T0 + 1000)],
)
def test_a_credential_error_while_open_keeps_it_shut_for_the_auth_cool_down(open_until, expected):
    state = BreakerState(
        state="open", open_until=open_until, reopens=1, reason="5 consecutive failures"
    )
    assert record(state, SETTINGS, T0, Outcome.CREDENTIAL, probe_id="straggler") is None
    assert (state.state, state.open_until, state.reopens) == ("open", expected, 1)
    verdict = allow(state, SETTINGS, T0 + 1, "next")
    assert (verdict.reason, verdict.why) == ("open", "credential rejected")


def test_a_credential_error_in_half_open_reopens_even_from_a_straggler():
    state = half_open()
    change = record(state, SETTINGS, T0 + 1, Outcome.CREDENTIAL, probe_id="straggler")
    assert change == "reopened"
    assert (state.state, state.reason) == ("open", "credential rejected")
    assert state.open_until == T0 + 1 + SETTINGS.auth_cooldown_s, "the auth cool-down, no doubling"
    assert state.probes == {}, "the probe in flight no longer decides"


# Retry-After


@pytest.mark.parametrize("name", ["closed", "open", "half_open"])
def test_a_retry_after_cools_the_route_without_changing_its_state(name):
    state = BreakerState(state=name, open_until=T0 + 10, reopens=1)
    change = record(state, SETTINGS, T0, Outcome.COOL, probe_id="call", retry_after_s=20)
    assert change == "cooled"
    assert (state.state, state.open_until, state.reopens) == (name, T0 + 10, 1)
    assert state.cool_until == T0 + 20
    verdict = allow(state, SETTINGS, T0 + 19.999, "next")
    assert (verdict.allowed, verdict.reason, verdict.retry_at) == (False, "cooling", T0 + 20)


def test_a_shorter_retry_after_does_not_shorten_the_cooling():
    state = BreakerState()
    record(state, SETTINGS, T0, Outcome.COOL, probe_id="a", retry_after_s=60)
    record(state, SETTINGS, T0 + 1, Outcome.COOL, probe_id="b", retry_after_s=5)
    assert state.cool_until == T0 + 60
    record(state, SETTINGS, T0 + 1, Outcome.COOL, probe_id="c", retry_after_s=100)
    assert state.cool_until == T0 + 101, "a longer one extends it"


def test_cooling_is_checked_before_the_cool_down_spends_a_probe():
    state = BreakerState(state="open", open_until=T0, reopens=1, cool_until=T0 + 20)
    verdict = allow(state, SETTINGS, T0 + 5, "early")
    assert (verdict.reason, verdict.retry_at) == ("cooling", T0 + 20)
    assert (state.state, state.probes) == ("open", {})
    assert allow(state, SETTINGS, T0 + 20, "probe").probe


# Settings


def test_overrides_change_only_the_fields_they_give():
    base = BreakerSettings(slow_call_s=30, cooldown_s=10)
    merged = base.merged(BreakerOverrides(cooldown_s=5, half_open_permits=2))
    assert merged.model_dump() == {**base.model_dump(), "cooldown_s": 5, "half_open_permits": 2}
    assert (base.cooldown_s, base.half_open_permits) == (10, 1), "the global settings stay"


def test_an_override_of_none_is_no_override():
    base = BreakerSettings(slow_call_s=30)
    assert base.merged(None) is base
    assert base.merged(BreakerOverrides()) == base
    assert base.merged(BreakerOverrides(slow_call_s=None)).slow_call_s == 30


def test_every_setting_can_be_overridden():
    assert set(BreakerOverrides.model_fields) == set(BreakerSettings.model_fields)


@pytest.mark.parametrize("model", [BreakerSettings, BreakerOverrides])
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("consecutive_failures", 0),
        ("failure_rate", 0),
        ("failure_rate", -0.1),
        ("failure_rate", 1.5),
        ("window_s", 0),
        ("min_calls", 0),
        ("slow_call_s", 0),
        ("cooldown_s", 0),
        ("cooldown_s", -30),
        ("cooldown_max_s", 0),
        ("cooldown_jitter", -0.1),
        ("cooldown_jitter", 1.0),
        ("half_open_permits", 0),
        ("probe_ttl_s", 0),
        ("auth_cooldown_s", -300),
        ("cooldown", 30),  # a typo is an error, not a silent default
    ],
)
def test_nonsense_settings_are_refused(model, name, value):
    with pytest.raises(ValidationError):
        model.model_validate({name: value})


def test_the_edges_of_the_valid_ranges_are_accepted():
    edges = {
        "consecutive_failures": 1,
        "failure_rate": 1.0,
        "min_calls": 1,
        "cooldown_jitter": 0.0,
        "half_open_permits": 1,
    }
    assert BreakerSettings.model_validate(edges).model_dump(include=set(edges)) == edges
    assert BreakerOverrides.model_validate(edges).model_dump(include=set(edges)) == edges


# Closing after K probe successes, failback, manual failback


def test_k_probe_successes_in_a_row_close_and_a_failure_between_starts_again():
    s = settings(close_after=2)
    state = half_open(s=s)
    assert succeed(state, T0 + 1, s, probe_id="probe") is None, "one success proves little"
    assert state.state == "half_open"
    assert allow(state, s, T0 + 2, "second").probe, "its permit is back for the next probe"
    assert fail(state, T0 + 3, s, probe_id="second") == "reopened"
    state.open_until = T0 + 4
    assert allow(state, s, T0 + 4, "third").probe
    assert succeed(state, T0 + 5, s, probe_id="third") is None, "the count started again"
    assert allow(state, s, T0 + 6, "fourth").probe
    assert succeed(state, T0 + 7, s, probe_id="fourth") == "closed"
    assert (state.state, state.changed_at) == ("closed", T0 + 7)


def test_the_first_success_after_a_close_is_the_failback():
    state = half_open()
    assert succeed(state, T0 + 1, probe_id="probe") == "closed"
    assert allow(state, SETTINGS, T0 + 2, "job").allowed
    assert succeed(state, T0 + 3, probe_id="job") == "failback", "traffic is back on the route"
    assert allow(state, SETTINGS, T0 + 4, "next").allowed
    assert succeed(state, T0 + 5, probe_id="next") is None, "said once"


def test_manual_failback_keeps_the_route_open_past_its_cool_down():
    s = settings(failback="manual")
    state = BreakerState(state="open", open_until=T0, reopens=1, reason="5 consecutive failures")
    verdict = allow(state, s, T0 + 3600, "probe")
    assert (verdict.allowed, verdict.reason, verdict.retry_at) == (False, "open", None)
    assert "failback is manual" in verdict.why
    assert state.state == "open"


def test_allow_says_when_it_moved_the_breaker_to_half_open():
    state = BreakerState(state="open", open_until=T0, reopens=1)
    first = allow(state, SETTINGS, T0, "probe")
    assert (first.probe, first.became_half_open) == (True, True)
    second = allow(state, SETTINGS, T0 + 1, "next")
    assert (second.allowed, second.became_half_open) == (False, False)
