"""A real stack per test module (two simulators, a worker), and the environment pointing at it.

The example apps build their Client as a deployed app does, from REDIS_URL, TURNOUT_CONFIG and
TURNOUT_NAMESPACE; ``stack_env`` sets those to the stack's (and nothing else of turnout's).
"""

from __future__ import annotations

import os

import pytest

# The integration tests' module-wide stack and its per-test reset, as they are.
from tests.integration.conftest import Stack, live, stack

__all__ = ["live", "stack", "stack_env"]


@pytest.fixture
def stack_env(live: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """The stack, its simulators and breakers reset, and this process's env pointing at it."""
    for name in list(os.environ):
        if name.startswith("TURNOUT_"):
            monkeypatch.delenv(name)
    for name, value in live.env.items():
        if name.startswith(("TURNOUT_", "REDIS_URL")):
            monkeypatch.setenv(name, value)
    return live
