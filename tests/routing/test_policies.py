from types import MappingProxyType

import pytest

from routing.errors import InvalidRequest
from routing.models import RoutingPolicy
from routing.planning import plan_candidates
from routing.policies import resolve_policy


def test_no_policy_means_the_default_one(config):
    assert resolve_policy(config).targets == ["openai-main", "groq-backup"]


def test_a_named_policy(config):
    assert resolve_policy(config, "local_first").deadline_s == 30


def test_bare_targets_make_an_ordered_policy(config):
    policy = resolve_policy(config, targets=["groq-backup", "local"])
    assert (policy.strategy, policy.targets) == ("ordered", ["groq-backup", "local"])


def test_bare_targets_fit_their_deadline_to_the_stack(config):
    assert resolve_policy(config, targets=["local"], max_deadline_s=20).deadline_s == 20
    assert resolve_policy(config, targets=["local"], max_deadline_s=5000).deadline_s == 300


@pytest.mark.parametrize(
    ("kwargs", "complaint"),
    [
        ({"policy": "nightly"}, "unknown policy 'nightly'"),
        ({"targets": ["openai-main", "nope"]}, "unknown deployment 'nope'"),
        ({"policy": {"targets": []}}, "invalid routing policy"),
        ({"policy": "default", "targets": ["local"]}, "not both"),
        ({"policy": RoutingPolicy(targets=["local"], deadline_s=5000)}, "longer than this stack"),
    ],
)
def test_what_cannot_run_is_refused_up_front(config, kwargs, complaint):
    with pytest.raises(InvalidRequest, match=complaint):
        resolve_policy(config, max_deadline_s=3000, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "param", "complaint"),
    [
        ({"policy": ["default"]}, "policy", "policy: a policy name .* not list"),
        ({"policy": 5}, "policy", "not int"),
        ({"policy": b"default"}, "policy", "not bytes"),
        ({"targets": 5}, "targets", r"targets: a list of deployment ids \(str\) .* not int"),
        ({"targets": "local"}, "targets", "not str"),
        ({"targets": {"local": 1}}, "targets", "not dict"),
        ({"targets": ["local", None]}, "targets", r"targets\[1\]: .* not NoneType"),
    ],
)
def test_arguments_of_the_wrong_type_are_refused_by_name(config, kwargs, param, complaint):
    with pytest.raises(InvalidRequest, match=complaint) as refused:
        resolve_policy(config, **kwargs)
    assert refused.value.param == param


def test_a_mapping_is_a_policy_like_a_dict(config):
    policy = resolve_policy(config, MappingProxyType({"targets": ["local"]}))
    assert policy.targets == ["local"]


def test_ordered_plan_keeps_the_order_and_reports_what_is_missing(config):
    plan = plan_candidates(RoutingPolicy(targets=["local", "gone", "openai-main"]), config)
    assert [r.deployment.id for r in plan.routes] == ["local", "openai-main"]
    assert plan.missing == ["gone"]


@pytest.mark.parametrize(
    ("kwargs", "hint"),
    [
        ({"policy": "local_frist"}, "did you mean 'local_first' for 'local_frist'?"),
        ({"targets": ["openai-main", "groq-bakup"]}, "did you mean 'groq-backup' for"),
    ],
)
def test_a_near_miss_at_submit_suggests_what_was_meant(config, kwargs, hint):
    with pytest.raises(InvalidRequest) as refused:
        resolve_policy(config, **kwargs)
    assert hint in str(refused.value)


def test_a_name_like_nothing_suggests_nothing(config):
    with pytest.raises(InvalidRequest) as refused:
        resolve_policy(config, "zzzzzz")
    assert "did you mean" not in str(refused.value)
