"""``./dev test`` runs every test; ``--fast`` leaves out the integration tier and nothing else."""

from __future__ import annotations

import sys

import pytest

from ops.dev import _shown, pytest_args


@pytest.mark.parametrize(
    ("given", "to_pytest"),
    [
        ([], []),
        (["-x", "tests/routing"], ["-x", "tests/routing"]),
        (["--fast"], ["-m", "not integration"]),
        (["--fast", "-k", "breaker"], ["-m", "not integration", "-k", "breaker"]),
        (["-x", "--fast", "tests/routing"], ["-m", "not integration", "-x", "tests/routing"]),
    ],
)
def test_fast_selects_the_tier_and_other_arguments_pass_through(given, to_pytest):
    assert pytest_args(given) == to_pytest


def test_a_step_is_shown_as_one_would_type_it():
    step = [sys.executable, "-m", "pytest", *pytest_args(["--fast"])]
    assert _shown(step) == "pytest -m 'not integration'"
