"""Every test is in exactly one tier, the one its folder says (tests/conftest.py), so that
``./dev test --fast`` (``-m "not integration"``) leaves out exactly the integration tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import COLLECTED, TESTS, TIERS, tier_of


def test_every_collected_test_has_exactly_one_tier_marker(request: pytest.FixtureRequest) -> None:
    collected = request.config.stash[COLLECTED]  # before -m deselected any
    assert request.node in collected
    wrong = {
        item.nodeid: tiers
        for item in collected
        if (tiers := [m.name for m in item.iter_markers() if m.name in TIERS])
        != [tier_of(item.path)]
    }
    assert wrong == {}


@pytest.mark.parametrize(
    ("path", "tier"),
    [
        ("integration/test_failover.py", "integration"),
        ("examples/test_flask_app.py", "integration"),
        ("routing/test_tokens.py", "unit"),
        ("providers/test_openai_wire.py", "unit"),
        ("conformance/test_openai_sdk.py", "unit"),
        ("test_tiers.py", "unit"),
    ],
)
def test_the_folder_says_the_tier(path: str, tier: str) -> None:
    assert tier_of(TESTS / Path(path)) == tier
