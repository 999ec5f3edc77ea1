"""``api_key: store:NAME`` beside ``api_key_env``: key pools that mix both, and a pasted key
refused by its shape only."""

from __future__ import annotations

import pytest

from routing.config import parse_config, stored_key_name
from routing.errors import ConfigError
from routing.planning import plan_candidates, routes_of, unusable_routes


def config_with(**deployment: object):
    return parse_config(
        {
            "deployments": [
                {"id": "d", "provider": "openai", "model": "gpt-4o-mini", **deployment}
            ],
            "policies": {"default": {"targets": ["d"]}},
        }
    )


def test_a_stored_key_alone_needs_no_variable():
    deployment = config_with(api_key="store:openai-main").deployments["d"]
    assert deployment.key_envs == ["store:openai-main"]
    assert deployment.required_envs == ()
    assert stored_key_name(deployment.key_env) == "openai-main"
    assert stored_key_name("OPENAI_API_KEY") is None


def test_a_pool_mixes_variables_and_stored_keys_each_its_own_route():
    config = config_with(api_key_env=["OPENAI_API_KEY"], api_key=["store:a", "store:b.2"])
    deployment = config.deployments["d"]
    assert deployment.key_envs == ["OPENAI_API_KEY", "store:a", "store:b.2"]
    assert deployment.required_envs == ("OPENAI_API_KEY",)
    ids = sorted(r.id for r in routes_of(deployment, config))
    assert ids == ["d/OPENAI_API_KEY", "d/store:a", "d/store:b.2"]
    # An unset variable takes out its own route, never a stored key's.
    assert unusable_routes(config, lambda _env: False) == {
        "d/OPENAI_API_KEY": "unusable: OPENAI_API_KEY is not set"
    }
    plan = plan_candidates(
        config.policies["default"], config, unusable={"d/store:a": "store:a was revoked"}
    )
    assert sorted(r.id for r in plan.routes) == ["d/OPENAI_API_KEY", "d/store:b.2"]
    [skip] = plan.skipped
    assert (skip.reason, skip.key, skip.detail) == (
        "missing_credential",
        "store:a",
        "d/store:a: store:a was revoked",
    )


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ("sk-proj-abcdefghijklmnopqrstuvwxyz012345", "deployments[0].api_key"),
        (["store:ok", "sk-proj-abcdefghijklmnopqrstuvwxyz012345"], "deployments[0].api_key[1]"),
        ("store:", "deployments[0].api_key"),
    ],
)
def test_a_key_pasted_where_its_store_name_belongs_is_refused_by_its_shape(value, path):
    with pytest.raises(ConfigError) as refused:
        config_with(api_key=value)
    message = str(refused.value)
    assert "1 problem in the config" in message
    assert f"{path}: must be store:NAME" in message
    assert "abcdefghijklmnop" not in message
    assert "turnout keys set NAME" in message
