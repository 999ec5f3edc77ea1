"""Which alert each breaker transition makes."""

import pytest

from routing.config import parse_config
from routing.routes import Transition
from workers.announce import event_of

CONFIG = parse_config(
    {
        "deployments": [
            {
                "id": "pooled",
                "provider": "groq",
                "model": "llama",
                "api_key_env": ["POOL_KEY_A", "POOL_KEY_B"],
            }
        ]
    }
)


@pytest.mark.parametrize(
    ("change", "reason", "event"),
    [
        ("opened", "5 consecutive failures", "opened"),
        ("opened", "credential rejected", "credential_invalid"),
        ("reopened", "probe failed", "reopened"),
        ("half_open", "cool-down over", "half_open"),
        ("closed", "", "closed"),
        ("failback", "", "failback"),
        ("forced_open", "by an operator (was closed)", "forced_open"),
    ],
)
def test_each_transition_makes_its_event(change, reason, event):
    made = event_of(Transition("pooled/POOL_KEY_B", change, "open", reason), CONFIG, "worker x:1")
    assert made is not None
    assert (made.event, made.route_id, made.deployment, made.provider) == (
        event,
        "pooled/POOL_KEY_B",
        "pooled",
        "groq",
    )
    assert made.source == "worker x:1"


def test_a_retry_after_cooling_a_route_is_routine_not_an_alert():
    assert event_of(Transition("pooled", "cooled", "closed", ""), CONFIG, "worker") is None
