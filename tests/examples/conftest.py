"""A real stack per test module (two simulators, a worker), and the environment pointing at it.

The example apps build their Client as a deployed app does, from REDIS_URL, TURNOUT_CONFIG and
TURNOUT_NAMESPACE; ``stack_env`` sets those to the stack's (and nothing else of turnout's).
"""

from __future__ import annotations

import os

import pytest

from tests.integration.conftest import Stack, make_stack, tear_down


@pytest.fixture(scope="module")
def stack(redis_url, tmp_path_factory):
    running = make_stack(redis_url, tmp_path_factory.mktemp("stack"), worker=True)
    yield running
    tear_down(running)


@pytest.fixture
def stack_env(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """The stack, its simulators and breakers reset, and this process's env pointing at it."""
    stack.primary.reset()
    stack.secondary.reset()
    stack.reset_routes()
    for name in list(os.environ):
        if name.startswith("TURNOUT_"):
            monkeypatch.delenv(name)
    for name, value in stack.env.items():
        if name.startswith(("TURNOUT_", "REDIS_URL")):
            monkeypatch.setenv(name, value)
    return stack
