"""One turnout per test module, from the testing switch users' own suites use (ops.testing).

The example apps build their Client as a deployed app does, from REDIS_URL, TURNOUT_CONFIG and
TURNOUT_NAMESPACE; ``turnout_testing`` points those at its stack while it runs. Each test gets
the stack with its providers mended and its breakers forgotten.
"""

from __future__ import annotations

import pytest

from ops.testing import TestingStack, turnout_testing


@pytest.fixture(scope="module")
def turnout_stack():
    with turnout_testing(providers=("primary", "secondary")) as stack:
        yield stack


@pytest.fixture
def stack_env(turnout_stack: TestingStack) -> TestingStack:
    """The stack, its simulators and breakers reset, and this process's env pointing at it."""
    turnout_stack.reset()
    return turnout_stack
