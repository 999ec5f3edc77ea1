"""The retry, failover and availability rules of execute_job: a scripted provider, a fake clock,
and the real per-process router (routing.local_router.LocalRouter) on that clock."""

from collections import defaultdict
from itertools import pairwise

import pytest

from routing.config import parse_config
from routing.errors import (
    AddressUnreachable,
    AuthFailed,
    BadRequest,
    ConnectionFailed,
    ContentPolicy,
    ContextLength,
    ErrorClass,
    Overloaded,
    RateLimited,
    ServerError,
)
from routing.local_router import LocalRouter
from routing.models import (
    Attempt,
    CompletionRequest,
    JobState,
    ProviderCompletion,
    RoutingPolicy,
    Usage,
)
from routing.planning import plan_candidates
from routing.routes import CallOutcome
from workers.execution import CallStarted, execute_job

CONFIG = parse_config(
    {
        "deployments": [
            {
                "id": "primary",
                "provider": "openai",
                "model": "gpt-4o-mini",
                "input_cost_per_mtok": 1.0,
                "output_cost_per_mtok": 2.0,
                "context_window": 8000,
            },
            {"id": "secondary", "provider": "groq", "model": "llama", "context_window": 4000},
            {"id": "large", "provider": "mistral", "model": "big", "context_window": 128000},
        ],
        "breaker": {
            "consecutive_failures": 3,
            "cooldown_s": 30,
            "cooldown_jitter": 0,
            "close_after": 1,
        },
    }
)
REQUEST = CompletionRequest.from_prompt("hi")
OK = ProviderCompletion(
    text="hello",
    finish_reason="stop",
    provider_finish_reason="stop",
    usage=Usage(prompt_tokens=1000, completion_tokens=500, total_tokens=1500),
)


class FakeClock:
    def __init__(self):
        self.t = 0.0
        self.sleeps = []

    def monotonic(self):
        return self.t

    def wall(self):
        return 1_700_000_000.0 + self.t

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.t += seconds


class ScriptedProviders:
    """Each deployment answers from its script, in order; each call takes ``call_s``."""

    def __init__(self, clock, scripts, call_s=0.1):
        self.clock = clock
        self.scripts = {k: list(v) for k, v in scripts.items()}
        self.calls = defaultdict(int)
        self.timeouts = []
        self.call_s = call_s

    def __call__(self, route, request, timeout_s):
        name = route.deployment.id
        self.calls[name] += 1
        self.timeouts.append(timeout_s)
        self.clock.t += self.call_s
        outcome = self.scripts[name].pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


class Run:
    def __init__(
        self,
        scripts,
        *,
        call_s=0.1,
        router=None,
        clock=None,
        provider_retries=None,
        short_wait_s=2.0,
        leave_success=False,
        unusable=None,
        **policy_fields,
    ):
        self.clock = clock or FakeClock()
        self.providers = ScriptedProviders(self.clock, scripts, call_s)
        self.router = router or LocalRouter(clock=self.clock.wall)
        self.recorded: list[Attempt] = []
        self.policy = RoutingPolicy(
            targets=list(scripts),
            **{
                "backoff_base_s": 1.0,
                "backoff_max_s": 8.0,
                "retries_per_target": 1,
                **policy_fields,
            },
        )
        self.result = execute_job(
            REQUEST,
            self.policy,
            plan_candidates(self.policy, CONFIG, prompt_tokens=10, unusable=unusable),
            router=self.router,
            call=self.providers,
            record_attempts=self.recorded.extend,
            prompt_tokens=10,
            default_retries=provider_retries or (lambda route: 1),
            redact=lambda text: text.replace("s3cret", "[redacted]"),
            clock=self.clock.monotonic,
            now=self.clock.wall,
            sleep=self.clock.sleep,
            short_wait_s=short_wait_s,
        )
        pending = self.result.pending_record
        if pending is not None and not leave_success:  # what the runtime does with the finish
            self.router.record(pending.grant, pending.outcome)

    @property
    def attempts(self):
        return [*self.recorded, *self.result.unrecorded]

    def outcomes(self):
        return [(a.deployment, a.outcome) for a in self.attempts]


def test_first_try_success_records_one_attempt_with_the_finish():
    run = Run({"primary": [OK], "secondary": []})
    assert run.result.state is JobState.SUCCEEDED
    assert run.recorded == [], "the only attempt rides along with the finish"
    assert run.outcomes() == [("primary", "ok")]
    fields = run.result.outcome_fields()
    assert (fields["deployment"], fields["provider"], fields["text"]) == (
        "primary",
        "openai",
        "hello",
    )
    assert fields["cost_usd"] == pytest.approx((1000 * 1.0 + 500 * 2.0) / 1e6)


def test_transient_errors_retry_then_fail_over():
    run = Run({"primary": [Overloaded("503", status_code=503)] * 2, "secondary": [OK]})
    assert run.result.state is JobState.SUCCEEDED
    assert run.result.route is not None
    assert run.result.route.deployment.id == "secondary"
    assert run.outcomes() == [
        ("primary", "overloaded"),
        ("primary", "overloaded"),
        ("secondary", "ok"),
    ]
    (backoff,) = run.clock.sleeps
    assert 0 <= backoff <= 1.0, "one backoff, full jitter"


def test_bad_request_fails_the_job_without_trying_anyone_else():
    run = Run(
        {"primary": [BadRequest("400: messages too short", status_code=400)], "secondary": [OK]}
    )
    assert run.result.state is JobState.FAILED
    assert run.result.error is not None
    assert run.result.error.error_class is ErrorClass.BAD_REQUEST
    assert run.providers.calls["secondary"] == 0
    assert run.clock.sleeps == []


def test_auth_errors_fail_over_at_once_and_open_that_routes_breaker():
    run = Run({"primary": [AuthFailed("401", status_code=401)], "secondary": [OK]})
    assert run.result.state is JobState.SUCCEEDED
    assert run.providers.calls["primary"] == 1
    again = Run({"primary": [OK], "secondary": [OK]}, router=run.router, clock=run.clock)
    assert again.outcomes()[0][1] == "skipped", "the next job does not call the bad key"
    assert again.attempts[0].reason == "open"


def test_retry_after_is_honoured_exactly():
    run = Run({"primary": [RateLimited("429", status_code=429, retry_after_s=2.0), OK]})
    assert run.result.state is JobState.SUCCEEDED
    assert run.clock.sleeps == [2.0]
    assert run.attempts[0].retry_after_s == 2.0


def test_a_retry_after_longer_than_the_cap_fails_over_instead_of_waiting():
    run = Run(
        {"primary": [RateLimited("429", retry_after_s=120.0)], "secondary": [OK]},
        retry_after_max_s=60,
    )
    assert run.result.state is JobState.SUCCEEDED
    assert (run.providers.calls["primary"], run.clock.sleeps) == (1, [])


def test_the_provider_saying_do_not_retry_is_obeyed():
    run = Run({"primary": [ServerError("500", should_retry=False)], "secondary": [OK]})
    assert (run.providers.calls["primary"], run.clock.sleeps) == (1, [])


def test_backoff_grows_exponentially_and_is_capped():
    lenient = parse_config(
        {
            "deployments": [{"id": "primary", "provider": "openai", "model": "m"}],
            "breaker": {"consecutive_failures": 100},
        }
    )
    clock = FakeClock()
    providers = ScriptedProviders(clock, {"primary": [ConnectionFailed("refused")] * 6 + [OK]})
    policy = RoutingPolicy(
        targets=["primary"], retries_per_target=6, backoff_base_s=1.0, backoff_max_s=4.0
    )
    result = execute_job(
        REQUEST,
        policy,
        plan_candidates(policy, lenient),
        router=LocalRouter(clock=clock.wall),
        call=providers,
        record_attempts=lambda a: None,
        clock=clock.monotonic,
        now=clock.wall,
        sleep=clock.sleep,
    )
    assert result.state is JobState.SUCCEEDED
    ceilings = [1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
    assert all(0 <= s <= c for s, c in zip(clock.sleeps, ceilings, strict=True))


def test_when_every_target_fails_the_job_fails_with_the_last_class():
    run = Run(
        {"primary": [AuthFailed("401 bad key s3cret")], "secondary": [ServerError("500 boom")] * 2}
    )
    assert run.result.state is JobState.FAILED
    assert run.result.error is not None
    assert run.result.error.error_class is ErrorClass.SERVER_ERROR
    assert "all 2 targets failed" in run.result.error.message
    assert len([a for a in run.attempts if a.outcome != "skipped"]) == 3
    assert run.attempts[0].message == "401 bad key [redacted]", "attempt messages are redacted"


def test_nothing_runs_past_the_deadline():
    run = Run(
        {"primary": [ServerError("500")] * 10, "secondary": [OK]},
        call_s=3.0,
        deadline_s=5.0,
        retries_per_target=10,
        backoff_base_s=0.5,
    )
    assert run.result.state is JobState.FAILED
    assert run.result.error is not None
    assert run.result.error.error_class is ErrorClass.DEADLINE_EXCEEDED
    assert run.clock.t <= 5.0 + 3.0, "the last attempt was capped by the remaining time"


def test_attempt_timeout_is_the_smaller_of_its_own_and_the_time_left():
    run = Run({"primary": [OK]}, attempt_timeout_s=60, deadline_s=10)
    assert run.providers.timeouts == [10.0]


def test_provider_defaults_and_per_class_retries():
    run = Run(
        {"primary": [Overloaded("503")] * 4, "secondary": [Overloaded("503")] * 2 + [OK]},
        retries_per_target=None,
        provider_retries=lambda route: {"primary": 3, "secondary": 2}[route.deployment.id],
    )
    assert run.result.state is JobState.SUCCEEDED
    assert (run.providers.calls["primary"], run.providers.calls["secondary"]) == (3, 3), (
        "the breaker (3 in a row) stopped the primary before its 4th try"
    )
    per_class = Run(
        {"primary": [ConnectionFailed("x")] * 3 + [OK]},
        retries={"connection": 2},
        retries_per_target=0,
    )
    assert per_class.providers.calls["primary"] == 3


def test_an_open_breaker_is_passed_over_and_explained():
    router = LocalRouter(clock=FakeClock().wall)
    first = Run(
        {"primary": [Overloaded("503")] * 3, "secondary": [OK] * 2},
        router=router,
        retries_per_target=2,
    )
    assert first.result.state is JobState.SUCCEEDED
    second = Run({"primary": [OK], "secondary": [OK]}, router=router, clock=first.clock)
    assert second.providers.calls["primary"] == 0
    skip = second.attempts[0]
    assert (skip.deployment, skip.outcome, skip.reason) == ("primary", "skipped", "open")


def test_a_breaker_another_worker_opens_mid_retry_moves_the_job_on():
    clock = FakeClock()
    router = LocalRouter(clock=clock.wall)

    class TrippingProvider(ScriptedProviders):
        def __call__(self, route, request, timeout_s):
            if route.deployment.id == "primary" and self.calls["primary"] == 0:
                # meanwhile, the fleet sees the primary fail three times
                for _ in range(3):
                    grant = router.acquire([route], order="given", tokens=1).grant
                    assert grant is not None
                    router.record(
                        grant, CallOutcome(error_class=ErrorClass.OVERLOADED, latency_s=0.1)
                    )
            return super().__call__(route, request, timeout_s)

    policy = RoutingPolicy(targets=["primary", "secondary"], retries_per_target=3)
    providers = TrippingProvider(clock, {"primary": [Overloaded("503")] * 4, "secondary": [OK]})
    recorded: list[Attempt] = []
    result = execute_job(
        REQUEST,
        policy,
        plan_candidates(policy, CONFIG),
        router=router,
        call=providers,
        record_attempts=recorded.extend,
        clock=clock.monotonic,
        now=clock.wall,
        sleep=clock.sleep,
    )
    assert result.state is JobState.SUCCEEDED
    assert providers.calls["primary"] == 1, "no retry into a breaker the fleet opened"


def test_context_length_moves_on_to_larger_windows_only():
    run = Run({"primary": [ContextLength("too long")], "secondary": [OK], "large": [OK]})
    assert run.result.route is not None
    assert run.result.route.deployment.id == "large"
    assert ("secondary", "skipped") in run.outcomes()
    assert next(a for a in run.attempts if a.deployment == "secondary").reason == "smaller_context"


def test_content_policy_fails_the_job_when_the_policy_says_so():
    run = Run(
        {"primary": [ContentPolicy("refused")], "secondary": [OK]}, content_policy_fallback=False
    )
    assert run.result.error is not None
    assert run.result.error.error_class is ErrorClass.CONTENT_POLICY
    assert run.providers.calls["secondary"] == 0


def trip_everything(router, clock, names=("primary", "secondary")):
    plan = plan_candidates(RoutingPolicy(targets=list(names)), CONFIG)
    for route in plan.routes:
        for _ in range(3):
            grant = router.acquire([route], order="given", tokens=1).grant
            router.record(grant, CallOutcome(error_class=ErrorClass.OVERLOADED, latency_s=0.1))


def test_all_dark_with_fail_fails_at_once_naming_each_target():
    clock = FakeClock()
    router = LocalRouter(clock=clock.wall)
    trip_everything(router, clock)
    run = Run(
        {"primary": [OK], "secondary": [OK]}, router=router, clock=clock, on_all_unavailable="fail"
    )
    assert run.result.error is not None
    assert run.result.error.error_class is ErrorClass.ALL_UNAVAILABLE
    assert "primary: open" in run.result.error.message
    assert "secondary: open" in run.result.error.message
    assert run.providers.calls == {}


def test_all_dark_with_wait_waits_briefly_or_frees_the_worker():
    clock = FakeClock()
    router = LocalRouter(clock=clock.wall)
    trip_everything(router, clock)
    later = Run({"primary": [OK], "secondary": [OK]}, router=router, clock=clock, deadline_s=300)
    assert later.result.state is JobState.QUEUED, "30 s is too long to hold a worker"
    assert later.result.retry_in_s is not None
    assert 29 < later.result.retry_in_s <= 30 + 0.25, "the cool-down, plus a little jitter"
    soon = Run(
        {"primary": [OK], "secondary": [OK]},
        router=router,
        clock=clock,
        short_wait_s=60,
        deadline_s=300,
    )
    assert soon.result.state is JobState.SUCCEEDED, "a short wait happens in place"
    assert soon.clock.sleeps, "and it really waited"
    too_late = LocalRouter(clock=clock.wall)
    trip_everything(too_late, clock)
    past = Run({"primary": [OK], "secondary": [OK]}, router=too_late, clock=clock, deadline_s=10)
    assert past.result.error is not None
    assert past.result.error.error_class is ErrorClass.ALL_UNAVAILABLE


def test_targets_the_plan_rules_out_are_explained_and_no_candidates_fails():
    run = Run({"primary": [OK]}, max_cost_usd=0.0000001)
    assert run.result.error is not None
    assert run.result.error.error_class is ErrorClass.NO_CANDIDATES
    (skip,) = run.attempts
    assert (skip.outcome, skip.reason) == ("skipped", "over_budget")


def test_a_route_whose_key_is_unset_is_never_called_and_its_skip_is_in_the_log():
    run = Run(
        {"primary": [OK], "secondary": [OK]},
        unusable={"primary": "unusable: PRIMARY_KEY is not set"},
    )
    assert run.result.state is JobState.SUCCEEDED
    assert run.outcomes() == [("primary", "skipped"), ("secondary", "ok")]
    skip = run.attempts[0]
    assert (skip.reason, skip.message) == (
        "missing_credential",
        "unusable: PRIMARY_KEY is not set",
    )


def test_a_job_whose_every_route_lacks_its_key_fails_naming_the_variables():
    run = Run({"primary": [OK]}, unusable={"primary": "unusable: PRIMARY_KEY is not set"})
    assert run.result.error is not None
    assert run.result.error.error_class is ErrorClass.NO_CANDIDATES
    assert "PRIMARY_KEY is not set" in run.result.error.message
    assert run.outcomes() == [("primary", "skipped")]


def test_a_success_is_left_to_the_finish_and_failures_are_recorded_at_once():
    clock = FakeClock()
    router = LocalRouter(clock=clock.wall)
    trip_everything(router, clock, names=("primary",))
    clock.sleep(31)  # the cool-down is over: the next call to the primary is a probe
    run = Run(
        {"secondary": [ServerError("500")], "primary": [OK]},
        router=router,
        clock=clock,
        leave_success=True,
        retries_per_target=0,
    )
    assert run.result.state is JobState.SUCCEEDED
    secondary = router.state_of("secondary")
    assert secondary is not None
    assert secondary.consecutive == 1, "a failure is recorded at once: the next try depends on it"
    pending = run.result.pending_record
    assert pending is not None
    assert pending.grant.route.id == "primary"
    assert pending.grant.probe
    assert pending.outcome.token_delta == 1500 - 10
    primary = router.state_of("primary")
    assert primary is not None
    assert primary.state == "half_open", "the probe's success waits for the finish"
    transition = router.record(pending.grant, pending.outcome)
    assert transition is not None
    assert transition.change == "closed"


def test_a_retry_after_too_long_to_wait_in_place_tries_the_others_first():
    run = Run({"primary": [RateLimited("429", retry_after_s=5.0)], "secondary": [OK]})
    assert run.result.state is JobState.SUCCEEDED
    assert (run.providers.calls["primary"], run.clock.sleeps) == (1, []), "no slot held 5 s"
    assert run.result.route is not None
    assert run.result.route.deployment.id == "secondary"


def test_a_lone_route_cooling_for_its_retry_after_is_called_again_once_it_may():
    freed = Run({"primary": [RateLimited("429", retry_after_s=5.0), OK]})
    assert freed.result.state is JobState.QUEUED, "5 s is too long to hold the slot"
    assert freed.result.retry_in_s is not None
    assert 4.8 <= freed.result.retry_in_s <= 5.3
    waited = Run({"primary": [RateLimited("429", retry_after_s=5.0), OK]}, short_wait_s=10)
    assert waited.result.state is JobState.SUCCEEDED
    assert sum(waited.clock.sleeps) >= 4.8
    assert waited.providers.calls["primary"] == 2
    spent = Run(
        {"primary": [RateLimited("429", retry_after_s=5.0)] * 3},
        short_wait_s=10,
        retries={"rate_limited": 1},
    )
    assert spent.result.error is not None
    assert spent.result.error.error_class is ErrorClass.RATE_LIMITED
    assert spent.providers.calls["primary"] == 2, "the route's retries bound the returns"


def test_a_job_waiting_on_another_workers_probe_looks_again_within_a_second():
    clock = FakeClock()
    router = LocalRouter(clock=clock.wall)
    trip_everything(router, clock, names=("primary",))
    clock.sleep(31)
    (route,) = plan_candidates(RoutingPolicy(targets=["primary"]), CONFIG).routes
    probe = router.acquire([route], order="given", tokens=1).grant
    assert probe is not None
    assert probe.probe

    def sleep_while_the_probe_answers(seconds):
        clock.sleep(seconds)
        router.record(probe, CallOutcome(error_class=None, latency_s=0.5))

    result = execute_job(
        REQUEST,
        RoutingPolicy(targets=["primary"], deadline_s=60),
        plan_candidates(RoutingPolicy(targets=["primary"]), CONFIG),
        router=router,
        call=ScriptedProviders(clock, {"primary": [OK]}),
        record_attempts=lambda attempts: None,
        clock=clock.monotonic,
        now=clock.wall,
        sleep=sleep_while_the_probe_answers,
    )
    assert result.state is JobState.SUCCEEDED, "not all_unavailable for the permit's 120 s TTL"
    assert 1.0 <= clock.t - 31 <= 1.5


def test_a_call_that_never_happened_gives_its_probe_permit_back():
    clock = FakeClock()
    router = LocalRouter(clock=clock.wall)
    trip_everything(router, clock, names=("primary",))
    clock.sleep(31)

    def broken(route, request, timeout_s):
        raise RuntimeError("a bug in an adapter")

    with pytest.raises(RuntimeError):
        execute_job(
            REQUEST,
            RoutingPolicy(targets=["primary"]),
            plan_candidates(RoutingPolicy(targets=["primary"]), CONFIG),
            router=router,
            call=broken,
            record_attempts=lambda attempts: None,
            clock=clock.monotonic,
            now=clock.wall,
            sleep=clock.sleep,
        )
    (route,) = plan_candidates(RoutingPolicy(targets=["primary"]), CONFIG).routes
    again = router.acquire([route], order="given", tokens=1).grant
    assert again is not None, "the permit came back at once, not after its TTL"
    assert again.probe


def test_each_call_is_announced_before_it_goes_out():
    clock = FakeClock()
    started = []
    providers = ScriptedProviders(
        clock, {"primary": [Overloaded("503"), Overloaded("503")], "secondary": [OK]}
    )

    def announce(call):
        started.append((call.deployment, call.attempt, providers.calls[call.deployment]))

    execute_job(
        REQUEST,
        RoutingPolicy(targets=["primary", "secondary"], retries_per_target=1, backoff_base_s=0),
        plan_candidates(RoutingPolicy(targets=["primary", "secondary"]), CONFIG),
        router=LocalRouter(clock=clock.wall),
        call=providers,
        record_attempts=lambda attempts: None,
        clock=clock.monotonic,
        now=clock.wall,
        sleep=clock.sleep,
        on_call=announce,
    )
    assert started == [("primary", 1, 0), ("primary", 2, 1), ("secondary", 3, 0)]


def test_a_waiting_job_says_which_routes_it_waits_for_why_and_until_when():
    clock = FakeClock()
    router = LocalRouter(clock=clock.wall)
    trip_everything(router, clock)
    later = Run({"primary": [OK], "secondary": [OK]}, router=router, clock=clock, deadline_s=300)
    waiting = later.result.waiting
    assert waiting is not None
    assert [(r.route, r.reason, r.detail) for r in waiting.routes] == [
        ("primary", "open", "3 consecutive failures"),
        ("secondary", "open", "3 consecutive failures"),
    ]
    assert waiting.routes[0].until == pytest.approx(clock.wall() + 30, abs=0.5)
    assert waiting.until == pytest.approx(clock.wall() + later.result.retry_in_s, abs=0.01)
    cooling = Run({"primary": [RateLimited("429", retry_after_s=5.0), OK]})
    assert cooling.result.waiting is not None
    (route,) = cooling.result.waiting.routes
    assert (route.route, route.reason) == ("primary", "cooling")
    assert route.until == pytest.approx(cooling.clock.wall() + 5.0 - 0.1, abs=0.2)


def test_a_route_with_nothing_at_its_address_is_not_waited_for():
    refused = AddressUnreachable("connection refused at 127.0.0.1:9: nothing listens there")
    run = Run({"primary": [refused] * 4}, retries_per_target=3, deadline_s=300)
    assert run.providers.calls["primary"] == 3, "its breaker opened on the third"
    assert run.result.state is JobState.FAILED, "its cool-down ends, but the URL stays wrong"
    assert run.result.error is not None
    assert run.result.error.error_class is ErrorClass.ALL_UNAVAILABLE
    assert "primary: open (3 consecutive failures)" in run.result.error.message
    assert "connection refused at 127.0.0.1:9" in run.result.error.message
    assert run.result.waiting is None


def test_a_route_whose_connections_fail_for_now_is_waited_for():
    reset = ConnectionFailed("RemoteProtocolError: peer closed connection")
    run = Run({"primary": [reset] * 4}, retries_per_target=3, deadline_s=300)
    assert run.result.state is JobState.QUEUED, "a transient outage cools down"
    assert run.result.waiting is not None


def test_a_breaker_open_on_a_rejected_credential_is_not_waited_for():
    clock = FakeClock()
    router = LocalRouter(clock=clock.wall)
    (route,) = plan_candidates(RoutingPolicy(targets=["primary"]), CONFIG).routes
    grant = router.acquire([route], order="given", tokens=1).grant
    assert grant is not None
    router.record(grant, CallOutcome(error_class=ErrorClass.AUTH, latency_s=0.1))
    run = Run({"primary": [OK]}, router=router, clock=clock, deadline_s=3600)
    assert run.result.state is JobState.FAILED, "it opens until a probe succeeds"
    assert run.result.error is not None
    assert run.result.error.error_class is ErrorClass.ALL_UNAVAILABLE
    assert "primary: open (credential rejected)" in run.result.error.message
    assert run.providers.calls == {}


def test_a_breaker_others_opened_on_nothing_at_its_address_is_not_waited_for():
    clock = FakeClock()
    router = LocalRouter(clock=clock.wall)
    (route,) = plan_candidates(RoutingPolicy(targets=["primary"]), CONFIG).routes
    refused = AddressUnreachable("connection refused at 127.0.0.1:9: nothing listens there")
    for _ in range(route.breaker.consecutive_failures):
        grant = router.acquire([route], order="given", tokens=1).grant
        assert grant is not None
        router.record(grant, CallOutcome.of(refused, latency_s=0.01))
    run = Run({"primary": [OK]}, router=router, clock=clock, deadline_s=3600)
    assert run.result.state is JobState.FAILED, "its cool-down ends, but the URL stays wrong"
    assert run.result.error is not None
    assert run.result.error.error_class is ErrorClass.ALL_UNAVAILABLE
    assert "primary: open (" in run.result.error.message
    assert "connection refused at 127.0.0.1:9" in run.result.error.message
    assert run.result.waiting is None
    assert run.providers.calls == {}, "this job never called it"


def test_a_breaker_others_opened_on_connections_failing_for_now_is_waited_for():
    clock = FakeClock()
    router = LocalRouter(clock=clock.wall)
    (route,) = plan_candidates(RoutingPolicy(targets=["primary"]), CONFIG).routes
    reset = ConnectionFailed("RemoteProtocolError: peer closed connection")
    for _ in range(route.breaker.consecutive_failures):
        grant = router.acquire([route], order="given", tokens=1).grant
        assert grant is not None
        router.record(grant, CallOutcome.of(reset, latency_s=0.01))
    run = Run({"primary": [OK]}, router=router, clock=clock, deadline_s=3600)
    assert run.result.state is JobState.QUEUED
    assert run.result.waiting is not None


# Retry budgets across reschedules: each run starts from what the earlier ones spent (the job
# record carries it: routing.jobstore), as the worker's runtime hands it over.

LENIENT = parse_config(
    {
        "deployments": [
            {"id": "primary", "provider": "openai", "model": "m"},
            {"id": "secondary", "provider": "groq", "model": "llama"},
        ],
        "breaker": {"consecutive_failures": 100, "cooldown_jitter": 0},
    }
)


class Rescheduled:
    """A job run as the worker runs it: each reschedule waits its countdown, and the next run
    gets what is left of the deadline, its delivery number and what the earlier runs spent."""

    def __init__(self, scripts, *, deadline_s, config=LENIENT, **policy_fields):
        self.clock = FakeClock()
        self.router = LocalRouter(clock=self.clock.wall)
        self.providers = ScriptedProviders(self.clock, scripts)
        self.policy = RoutingPolicy(
            targets=list(scripts),
            deadline_s=deadline_s,
            **{"backoff_base_s": 1.0, **policy_fields},
        )
        self.attempts: list[Attempt] = []
        self.announced: list[CallStarted] = []
        self.runs = 0
        spent = None
        while True:
            self.runs += 1
            result = execute_job(
                REQUEST,
                self.policy,
                plan_candidates(self.policy, config, prompt_tokens=10),
                router=self.router,
                call=self.providers,
                record_attempts=self.attempts.extend,
                deadline_s=deadline_s - self.clock.t,
                prompt_tokens=10,
                run=self.runs,
                clock=self.clock.monotonic,
                now=self.clock.wall,
                sleep=self.clock.sleep,
                on_call=self.announced.append,
                spent=spent,
            )
            self.attempts.extend(result.unrecorded)
            if result.state is not JobState.QUEUED:
                self.result = result
                return
            assert result.retry_in_s is not None
            spent = result.spent
            self.clock.sleep(result.retry_in_s)

    def calls(self):
        return [(a.deployment, a.outcome, a.run) for a in self.attempts if a.outcome != "skipped"]


def test_a_429_s_retries_hold_across_reschedules_and_the_job_ends_rate_limited():
    job = Rescheduled(
        {"primary": [RateLimited("429 slow down", status_code=429, retry_after_s=3.0)] * 10},
        deadline_s=30,
        retries_per_target=2,
    )
    assert job.calls() == [
        ("primary", "rate_limited", 1),
        ("primary", "rate_limited", 2),
        ("primary", "rate_limited", 3),
    ], "1 call and its 2 retries, one per delivery: not one per run until the deadline"
    assert job.result.error is not None
    assert job.result.error.error_class is ErrorClass.RATE_LIMITED
    assert job.result.error.message == (
        "the only target failed; last: primary (3 of 3 calls, Retry-After 3s): 429 slow down"
    )
    assert [(c.attempt, c.run) for c in job.announced] == [(1, 1), (2, 2), (3, 3)]
    assert 6 <= job.clock.t < 7, "each return waited its Retry-After"


def test_a_503_s_retry_after_is_honoured_and_its_retries_spent_across_reschedules():
    busy = Overloaded("503 busy", status_code=503, retry_after_s=3.0)
    job = Rescheduled({"primary": [busy] * 10}, deadline_s=30, retries_per_target=3)
    assert [outcome for _, outcome, _ in job.calls()] == ["overloaded"] * 4
    assert [run for _, _, run in job.calls()] == [1, 2, 3, 4]
    assert job.result.error is not None
    assert job.result.error.error_class is ErrorClass.OVERLOADED
    assert "primary (4 of 4 calls, Retry-After 3s)" in job.result.error.message
    starts = [a.started_at for a in job.attempts if a.outcome != "skipped"]
    assert all(b - a >= 3.0 for a, b in pairwise(starts)), "none came early"


def test_a_503_with_a_retry_after_moves_on_to_the_others_at_once():
    busy = Overloaded("503 busy", status_code=503, retry_after_s=3.0)
    job = Rescheduled({"primary": [busy], "secondary": [OK]}, deadline_s=30, retries_per_target=3)
    assert job.result.state is JobState.SUCCEEDED
    assert job.calls() == [("primary", "overloaded", 1), ("secondary", "ok", 1)]
    assert job.clock.sleeps == [], "no slot held, no reschedule"


def test_a_route_given_up_on_is_not_called_again_in_a_later_run():
    job = Rescheduled(
        {
            "primary": [ServerError("500", status_code=500)] * 5,
            "secondary": [RateLimited("429", status_code=429, retry_after_s=5.0), OK],
        },
        deadline_s=60,
        retries_per_target=1,
        backoff_base_s=0,
    )
    assert job.result.state is JobState.SUCCEEDED
    assert job.calls() == [
        ("primary", "server_error", 1),
        ("primary", "server_error", 1),
        ("secondary", "rate_limited", 1),
        ("secondary", "ok", 2),
    ]
    assert job.runs == 2


def test_a_retry_after_past_the_deadline_ends_the_job_with_its_class_not_all_unavailable():
    job = Rescheduled(
        {"primary": [RateLimited("429", status_code=429, retry_after_s=10.0)] * 3},
        deadline_s=8,
        retries_per_target=2,
    )
    assert len(job.calls()) == 1
    assert job.result.error is not None
    assert job.result.error.error_class is ErrorClass.RATE_LIMITED
    assert "primary (1 of 3 calls, Retry-After 10s, past the deadline)" in (
        job.result.error.message
    )


def test_a_retry_after_over_the_cap_says_so_in_the_error():
    job = Rescheduled(
        {"primary": [Overloaded("529", status_code=529, retry_after_s=90.0)]},
        deadline_s=300,
        retries_per_target=2,
        retry_after_max_s=60,
    )
    assert len(job.calls()) == 1
    assert job.result.error is not None
    assert "Retry-After 90s, over retry_after_max_s" in job.result.error.message


def test_a_route_the_deadline_cut_short_says_so_in_the_error():
    run = Run(
        {"primary": [ServerError("500 boom", status_code=500)] * 6},
        call_s=3.0,
        deadline_s=7.0,
        retries_per_target=5,
        backoff_jitter="none",
    )
    assert run.providers.calls["primary"] == 2
    assert run.result.error is not None
    assert run.result.error.error_class is ErrorClass.SERVER_ERROR
    assert run.result.error.message == (
        "the only target failed; last: primary (2 of 6 calls, no time left before the deadline "
        "for another): 500 boom"
    )
