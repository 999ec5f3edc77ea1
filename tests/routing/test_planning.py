"""Candidate planning (routing.planning): pure, so every rule is checked without Redis or servers.

Deployments default to ``vllm`` with a model the packaged price table does not know, so each
test states the prices and context windows it relies on; the tests about the table use the
table's own ``openai``/``gpt-4o-mini`` entry (0.15 / 0.60 USD per million tokens, 128k window).
"""

import random
from collections import Counter
from typing import Any

import pytest

from routing.config import TurnoutConfig, parse_config
from routing.errors import ConfigError
from routing.models import RoutingPolicy
from routing.planning import (
    DEFAULT_COMPLETION_ESTIMATE,
    Plan,
    PlannedSkip,
    plan_candidates,
    routes_of,
    unusable_routes,
)


def dep(
    name: str, provider: str = "vllm", model: str = "unpriced-model", **fields: Any
) -> dict[str, Any]:
    return {"id": name, "provider": provider, "model": model, **fields}


def config_of(*deployments: dict[str, Any], **sections: Any) -> TurnoutConfig:
    return parse_config({"deployments": list(deployments), **sections}, source="test.yaml")


def plan(config: TurnoutConfig, targets: list[str], **kwargs: Any) -> Plan:
    policy_fields = {
        k: kwargs.pop(k)
        for k in list(kwargs)
        if k not in ("prompt_tokens", "max_tokens", "rng", "unusable")
    }
    return plan_candidates(RoutingPolicy(targets=targets, **policy_fields), config, **kwargs)


def ids(plan: Plan) -> list[str]:
    return [route.id for route in plan.routes]


def skips(plan: Plan) -> list[tuple[str, str, str]]:
    return [(s.deployment.id, s.reason, s.detail) for s in plan.skipped]


def priced(name: str, input_cost: float, output_cost: float, **fields: Any) -> dict[str, Any]:
    return dep(name, input_cost_per_mtok=input_cost, output_cost_per_mtok=output_cost, **fields)


# -- strategies -----------------------------------------------------------------------------


def test_ordered_keeps_the_listed_order_whatever_the_prices():
    config = config_of(priced("pricey", 50, 50), priced("free", 0, 0), priced("mid", 5, 5))
    result = plan(config, ["pricey", "free", "mid"], prompt_tokens=100, max_tokens=100)
    assert ids(result) == ["pricey", "free", "mid"]
    assert (result.order, result.skipped, result.missing) == ("given", [], [])


@pytest.mark.parametrize(
    ("prompt_tokens", "max_tokens", "cheapest"),
    [
        # prompt-heavy: 1000*1 + 10*10 = 1100 < 1000*5 + 10*2 = 5020
        (1000, 10, "cheap-in"),
        # completion-heavy: 10*1 + 1000*10 = 10010 > 10*5 + 1000*2 = 2050
        (10, 1000, "cheap-out"),
    ],
)
def test_cheapest_prices_both_the_prompt_and_max_tokens(prompt_tokens, max_tokens, cheapest):
    config = config_of(priced("cheap-in", 1, 10), priced("cheap-out", 5, 2))
    result = plan(
        config,
        ["cheap-in", "cheap-out"],
        strategy="cheapest",
        prompt_tokens=prompt_tokens,
        max_tokens=max_tokens,
    )
    assert ids(result)[0] == cheapest
    assert sorted(ids(result)) == ["cheap-in", "cheap-out"]
    assert result.order == "given"


def test_cheapest_without_max_tokens_assumes_the_default_completion_estimate():
    # With 512 completion tokens: 100*1 + 512*10 = 5220 > 100*5 + 512*2 = 1524.
    # Counting no completion tokens would rank them the other way (100 < 500).
    assert DEFAULT_COMPLETION_ESTIMATE == 512
    config = config_of(priced("cheap-in", 1, 10), priced("cheap-out", 5, 2))
    result = plan(config, ["cheap-in", "cheap-out"], strategy="cheapest", prompt_tokens=100)
    assert ids(result) == ["cheap-out", "cheap-in"]


def test_cheapest_puts_unknown_prices_last_in_their_listed_order():
    config = config_of(
        dep("unknown-1"),
        priced("expensive", 10, 10),
        dep("half-priced", input_cost_per_mtok=0.01),  # no output price: cost unknown
        priced("cheap", 1, 1),
        priced("free", 0, 0),  # a known zero is cheaper than anything, unlike an unknown
        dep("unknown-2"),
    )
    result = plan(
        config,
        ["unknown-1", "expensive", "half-priced", "cheap", "free", "unknown-2"],
        strategy="cheapest",
        prompt_tokens=1000,
        max_tokens=1000,
    )
    assert ids(result) == ["free", "cheap", "expensive", "unknown-1", "half-priced", "unknown-2"]


def test_cheapest_keeps_the_listed_order_between_equal_costs():
    config = config_of(priced("b", 2, 2), priced("a", 2, 2), priced("c", 1, 1))
    result = plan(config, ["b", "a", "c"], strategy="cheapest", prompt_tokens=10, max_tokens=10)
    assert ids(result) == ["c", "b", "a"]


@pytest.mark.parametrize(
    ("strategy", "order"),
    [
        ("ordered", "given"),
        ("cheapest", "given"),
        ("weighted", "given"),
        ("fastest", "latency"),
        ("least_busy", "inflight"),
    ],
)
def test_each_strategy_names_the_order_the_router_applies(strategy, order):
    config = config_of(dep("a"), dep("b"))
    assert plan(config, ["a", "b"], strategy=strategy).order == order


@pytest.mark.parametrize("strategy", ["fastest", "least_busy"])
def test_live_strategies_leave_the_listed_order_to_the_router_and_still_apply_rules(strategy):
    config = config_of(priced("slow", 9, 9), dep("denied", provider="groq"), priced("quick", 1, 1))
    result = plan(
        config,
        ["slow", "denied", "quick"],
        strategy=strategy,
        deny_providers=["groq"],
        prompt_tokens=10,
        max_tokens=10,
    )
    assert ids(result) == ["slow", "quick"]
    assert [s.deployment.id for s in result.skipped] == ["denied"]


def test_weighted_first_choice_follows_the_weights():
    config = config_of(dep("heavy", weight=3), dep("light", weight=1))
    rng = random.Random(20240601)
    draws = 10_000
    firsts = Counter(
        ids(plan(config, ["heavy", "light"], strategy="weighted", rng=rng))[0] for _ in range(draws)
    )
    assert firsts["heavy"] / draws == pytest.approx(0.75, abs=0.02)
    assert firsts["heavy"] + firsts["light"] == draws


def test_weighted_keeps_every_target_as_a_fallback():
    config = config_of(dep("a", weight=5), dep("b", weight=1), dep("c", weight=0.001))
    rng = random.Random(7)
    orders = [ids(plan(config, ["a", "b", "c"], strategy="weighted", rng=rng)) for _ in range(500)]
    assert all(sorted(order) == ["a", "b", "c"] for order in orders)
    assert sum(order[0] == "c" for order in orders) <= 5, "a 0.001 share is almost never first"
    assert any(order[0] == "b" for order in orders), "the order really is drawn"


def test_a_zero_weight_is_refused_by_the_config():
    # So "never first" cannot arise: a deployment that should take no traffic is left out.
    with pytest.raises(ConfigError, match=r"deployments\[1\]\.weight"):
        config_of(dep("a"), dep("b", weight=0))


# -- budget ---------------------------------------------------------------------------------


def test_a_target_over_budget_is_skipped_and_one_under_it_kept():
    # (1000 * 1 + 500 * 2) / 1e6 = $0.002 for "mid"; $0.0002 for "low".
    config = config_of(priced("mid", 1, 2), priced("low", 0.1, 0.2))
    result = plan(config, ["mid", "low"], max_cost_usd=0.001, prompt_tokens=1000, max_tokens=500)
    assert ids(result) == ["low"]
    assert skips(result) == [("mid", "over_budget", "estimated $0.002000 > max_cost_usd $0.001")]


def test_a_target_costing_exactly_the_budget_is_kept():
    config = config_of(priced("mid", 1, 2))
    result = plan(config, ["mid"], max_cost_usd=0.002, prompt_tokens=1000, max_tokens=500)
    assert (ids(result), result.skipped) == (["mid"], [])


@pytest.mark.parametrize(("budget", "kept"), [(0.5, False), (0.6, True)])
def test_the_budget_assumes_the_default_completion_estimate_without_max_tokens(budget, kept):
    # 512 completion tokens at $1000 per million: $0.512.
    config = config_of(priced("out-priced", 0, 1000))
    result = plan(config, ["out-priced"], max_cost_usd=budget, prompt_tokens=0)
    assert (ids(result) == ["out-priced"]) is kept
    assert [s.reason for s in result.skipped] == ([] if kept else ["over_budget"])


def test_a_target_of_unknown_cost_is_not_held_to_the_budget():
    # Only an estimate that exceeds max_cost_usd rules a target out; an unknown one cannot.
    config = config_of(dep("unknown"), dep("half-priced", output_cost_per_mtok=1000.0))
    result = plan(
        config,
        ["unknown", "half-priced"],
        max_cost_usd=0.000001,
        prompt_tokens=100_000,
        max_tokens=100_000,
    )
    assert (ids(result), result.skipped) == (["unknown", "half-priced"], [])


# -- context window -------------------------------------------------------------------------


def test_a_window_too_small_for_prompt_and_max_tokens_is_skipped():
    config = config_of(dep("small", context_window=1000), dep("large", context_window=4000))
    result = plan(config, ["small", "large"], prompt_tokens=900, max_tokens=200)
    assert ids(result) == ["large"]
    assert skips(result) == [
        ("small", "context_too_small", "needs ~1100 tokens, the window holds 1000")
    ]


def test_a_window_that_just_holds_prompt_and_max_tokens_is_kept():
    config = config_of(dep("small", context_window=1000))
    assert ids(plan(config, ["small"], prompt_tokens=800, max_tokens=200)) == ["small"]


def test_without_max_tokens_only_the_prompt_must_fit():
    config = config_of(dep("small", context_window=1000))
    assert ids(plan(config, ["small"], prompt_tokens=1000)) == ["small"]
    assert [s.reason for s in plan(config, ["small"], prompt_tokens=1001).skipped] == [
        "context_too_small"
    ]


def test_with_context_window_fallback_off_a_small_window_is_kept():
    config = config_of(dep("small", context_window=1000))
    result = plan(
        config, ["small"], context_window_fallback=False, prompt_tokens=900, max_tokens=200
    )
    assert (ids(result), result.skipped) == (["small"], [])


def test_an_unknown_window_is_kept():
    config = config_of(dep("unknown"))
    assert ids(plan(config, ["unknown"], prompt_tokens=10_000_000, max_tokens=1)) == ["unknown"]


# -- providers ------------------------------------------------------------------------------


def test_allow_providers_passes_over_every_other_provider():
    config = config_of(dep("main", provider="openai"), dep("backup", provider="groq"), dep("local"))
    result = plan(config, ["main", "backup", "local"], allow_providers=["openai", "vllm"])
    assert ids(result) == ["main", "local"]
    assert skips(result) == [("backup", "denied_by_policy", "groq is not in allow_providers")]


def test_deny_providers_passes_over_those_providers():
    config = config_of(dep("main", provider="openai"), dep("backup", provider="groq"))
    result = plan(config, ["main", "backup"], deny_providers=["groq"])
    assert ids(result) == ["main"]
    assert skips(result) == [("backup", "denied_by_policy", "groq is in deny_providers")]


def test_deny_providers_wins_over_allow_providers():
    config = config_of(dep("main", provider="openai"))
    result = plan(config, ["main"], allow_providers=["openai"], deny_providers=["openai"])
    assert (ids(result), skips(result)) == (
        [],
        [("main", "denied_by_policy", "openai is in deny_providers")],
    )


def test_a_target_ruled_out_twice_is_skipped_once_with_the_first_rule():
    config = config_of(
        priced("denied", 1000, 1000, provider="groq", context_window=10),
        priced("small-and-pricey", 1000, 1000, context_window=10),
    )
    result = plan(
        config,
        ["denied", "small-and-pricey"],
        deny_providers=["groq"],
        max_cost_usd=0.01,
        prompt_tokens=100,
        max_tokens=100,
    )
    assert [(s.deployment.id, s.reason) for s in result.skipped] == [
        ("denied", "denied_by_policy"),
        ("small-and-pricey", "context_too_small"),
    ]
    assert all(isinstance(s, PlannedSkip) for s in result.skipped)


# -- aliases and unknown targets ------------------------------------------------------------


def test_an_alias_expands_to_its_deployments_in_order():
    config = config_of(dep("a"), dep("b"), dep("c"), aliases={"pool": ["c", "a"]})
    assert ids(plan(config, ["b", "pool"])) == ["b", "c", "a"]


def test_a_deployment_named_twice_through_aliases_is_planned_once_where_first_named():
    config = config_of(
        dep("a"), dep("b"), dep("c"), aliases={"fast": ["b", "a"], "all": ["a", "b", "c"]}
    )
    assert ids(plan(config, ["a", "fast", "all"])) == ["a", "b", "c"]
    assert ids(plan(config, ["fast", "all"])) == ["b", "a", "c"]


def test_targets_this_config_does_not_know_are_reported_missing_in_order():
    config = config_of(dep("a"), dep("b"))
    result = plan(config, ["gone", "a", "old-alias", "b"])
    assert ids(result) == ["a", "b"]
    assert result.missing == ["gone", "old-alias"]
    assert result.skipped == []


def test_a_deployment_whose_key_variable_is_unset_is_planned_not_missing(monkeypatch):
    # ``missing`` is about the config (a target it does not know), not the environment:
    # the planner reads no environment; the worker passes what it found unset at start as
    # ``unusable`` (see the missing-credentials tests below).
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("TURNOUT_TEST_UNSET_KEY", raising=False)
    config = config_of(
        dep("main", provider="openai"),
        dep("own", provider="groq", api_key_env="TURNOUT_TEST_UNSET_KEY"),
    )
    result = plan(config, ["main", "own"])
    assert (ids(result), result.missing) == (["main", "own"], [])
    assert [r.key_env for r in result.routes] == ["OPENAI_API_KEY", "TURNOUT_TEST_UNSET_KEY"]


# -- key pools ------------------------------------------------------------------------------

POOL = ["POOL_KEY_A", "POOL_KEY_B", "POOL_KEY_C"]
ROTATIONS = [POOL, POOL[1:] + POOL[:1], POOL[2:] + POOL[:2]]


def test_a_key_pool_gives_one_route_per_key_each_with_its_own_id():
    config = config_of(dep("pooled", api_key_env=POOL))
    routes = routes_of(config.deployment("pooled"), config, random.Random(1))
    assert sorted(r.key_env or "" for r in routes) == POOL
    assert sorted(r.id for r in routes) == [f"pooled/{key}" for key in POOL]
    assert all(r.deployment is config.deployment("pooled") for r in routes)


def test_a_key_pool_is_rotated_so_calls_spread_across_its_keys():
    config = config_of(dep("pooled", api_key_env=POOL))
    deployment = config.deployment("pooled")
    rng = random.Random(99)
    draws = 3000
    orders = [[r.key_env for r in routes_of(deployment, config, rng)] for _ in range(draws)]
    assert all(order in ROTATIONS for order in orders), "a rotation keeps the pool's cycle"
    firsts = Counter(order[0] for order in orders)
    assert set(firsts) == set(POOL)
    for key in POOL:
        assert firsts[key] / draws == pytest.approx(1 / 3, abs=0.04)


def test_a_single_key_route_is_named_after_its_deployment():
    config = config_of(
        dep("default-key", provider="openai"),
        dep("own-key", provider="groq", api_key_env="GROQ_KEY_2"),
        dep("pool-of-one", api_key_env=["ONLY_KEY"]),
        dep("keyless", provider="bedrock", model="anthropic.claude-3-haiku-20240307-v1:0"),
    )
    routes = [r for d in config.deployments.values() for r in routes_of(d, config)]
    assert [(r.id, r.key_env) for r in routes] == [
        ("default-key", "OPENAI_API_KEY"),
        ("own-key", "GROQ_KEY_2"),
        ("pool-of-one", "ONLY_KEY"),
        ("keyless", None),
    ]


def test_every_route_of_a_pool_carries_the_deployments_limits_and_breaker():
    config = config_of(
        dep("pooled", api_key_env=POOL[:2], rpm=60, tpm=9000, breaker={"consecutive_failures": 2}),
        breaker={"cooldown_s": 7},
    )
    routes = routes_of(config.deployment("pooled"), config)
    assert [(r.rpm, r.tpm) for r in routes] == [(60, 9000), (60, 9000)]
    assert {(r.breaker.consecutive_failures, r.breaker.cooldown_s) for r in routes} == {(2, 7)}


def test_a_plan_lists_a_pools_routes_together_in_the_deployments_place():
    config = config_of(dep("first"), dep("pooled", api_key_env=POOL), dep("last"))
    result = plan(config, ["first", "pooled", "last"], rng=random.Random(3))
    assert ids(result)[0] == "first"
    assert sorted(ids(result)[1:4]) == [f"pooled/{key}" for key in POOL]
    assert [r.key_env for r in result.routes[1:4]] in ROTATIONS
    assert ids(result)[4] == "last"


def test_a_skipped_pool_gives_no_routes():
    config = config_of(dep("pooled", provider="groq", api_key_env=POOL), dep("other"))
    result = plan(config, ["pooled", "other"], deny_providers=["groq"])
    assert ids(result) == ["other"]
    assert [s.deployment.id for s in result.skipped] == ["pooled"]


# -- per-deployment prices and windows over the packaged table -------------------------------


def test_the_packaged_table_prices_a_known_model():
    # 100k prompt + 10k completion tokens of gpt-4o-mini: 0.015 + 0.006 = $0.021.
    config = config_of(dep("table", provider="openai", model="gpt-4o-mini"))
    result = plan(config, ["table"], max_cost_usd=0.02, prompt_tokens=100_000, max_tokens=10_000)
    assert skips(result) == [("table", "over_budget", "estimated $0.021000 > max_cost_usd $0.02")]


def test_configured_prices_win_over_the_packaged_table_for_the_budget():
    config = config_of(
        dep(
            "own-price",
            provider="openai",
            model="gpt-4o-mini",
            input_cost_per_mtok=0.05,
            output_cost_per_mtok=0.1,
        )
    )
    result = plan(
        config, ["own-price"], max_cost_usd=0.02, prompt_tokens=100_000, max_tokens=10_000
    )
    assert (ids(result), result.skipped) == (["own-price"], [])


def test_a_single_configured_price_overrides_only_its_side_for_cheapest():
    # "table": 1000 * 0.15 + 1000 * 0.60; "input-free": 1000 * 0 + 1000 * 0.60 (the table's).
    # Dropping the table's output price would make "input-free" unknown, so last.
    config = config_of(
        dep("table", provider="openai", model="gpt-4o-mini"),
        dep("input-free", provider="openai", model="gpt-4o-mini", input_cost_per_mtok=0),
    )
    result = plan(
        config, ["table", "input-free"], strategy="cheapest", prompt_tokens=1000, max_tokens=1000
    )
    assert ids(result) == ["input-free", "table"]


def test_a_configured_context_window_wins_over_the_packaged_table():
    # The table holds 128000 tokens for gpt-4o-mini; 150000 are needed.
    config = config_of(
        dep("table", provider="openai", model="gpt-4o-mini"),
        dep("larger", provider="openai", model="gpt-4o-mini", context_window=200_000),
        dep("smaller", provider="openai", model="gpt-4o-mini", context_window=1000),
    )
    big = plan(config, ["table", "larger"], prompt_tokens=100_000, max_tokens=50_000)
    assert ids(big) == ["larger"]
    assert skips(big) == [
        ("table", "context_too_small", "needs ~150000 tokens, the window holds 128000")
    ]
    small = plan(config, ["table", "smaller"], prompt_tokens=1000, max_tokens=500)
    assert ids(small) == ["table"]
    assert [(s.deployment.id, s.reason) for s in small.skipped] == [
        ("smaller", "context_too_small")
    ]


# -- missing credentials --------------------------------------------------------------------


def test_a_pools_key_that_is_unset_takes_only_its_own_route_out_with_the_variable_named():
    config = config_of(dep("pooled", "openai", "gpt-4o", api_key_env=POOL), dep("other"))
    unusable = unusable_routes(config, lambda env: env != "POOL_KEY_B")
    assert unusable == {"pooled/POOL_KEY_B": "unusable: POOL_KEY_B is not set"}
    result = plan(config, ["pooled", "other"], unusable=unusable)
    assert sorted(ids(result)) == ["other", "pooled/POOL_KEY_A", "pooled/POOL_KEY_C"]
    (skip,) = result.skipped
    assert (skip.target, skip.reason, skip.key) == (
        "pooled/POOL_KEY_B",
        "missing_credential",
        "POOL_KEY_B",
    )
    assert skip.detail == "pooled/POOL_KEY_B: unusable: POOL_KEY_B is not set"


def test_an_unset_provider_variable_takes_every_route_of_the_deployment_out():
    config = config_of(
        dep("azure", provider="azure", model="gpt-4o", api_key_env=["AZ_KEY_1", "AZ_KEY_2"]),
        dep("default-key", provider="openai", model="gpt-4o-mini"),
    )
    unusable = unusable_routes(config, lambda env: env in ("AZ_KEY_1", "AZ_KEY_2"))
    assert unusable == {
        "azure/AZ_KEY_1": "unusable: AZURE_BASE_URL is not set",
        "azure/AZ_KEY_2": "unusable: AZURE_BASE_URL is not set",
        "default-key": "unusable: OPENAI_API_KEY is not set",
    }
    assert unusable_routes(config, lambda env: True) == {}
