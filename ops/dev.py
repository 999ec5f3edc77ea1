"""What ``./dev demo`` and ``./dev test`` run once the virtualenv exists.

``test`` uses the Redis at REDIS_URL (default 127.0.0.1:6379) when one answers, and starts an
embedded one otherwise; then ruff, mypy, lint-imports and pytest, stopping at the first failure.
Every test runs: that is what CI runs. ``test --fast`` runs the same checks but only the tests not
marked ``integration`` (tests/conftest.py marks them by folder): the unit, wire and SDK
conformance tests, without worker processes. Any other arguments go to pytest as they are.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

from ops.embedded_redis import EmbeddedRedis, redis_answers

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
FAST = "--fast"
# What --fast puts before the caller's own pytest arguments.
FAST_PYTEST_ARGS = ["-m", "not integration"]


def _shown(step: list[str]) -> str:
    """A step as one would type it: ``mypy .`` rather than the venv's python path."""
    if step[0] == sys.executable:
        step = step[2:]
    return shlex.join([Path(step[0]).name, *step[1:]])


def run_checks(extra_pytest_args: list[str]) -> int:
    steps = [
        [sys.executable, "-m", "ruff", "check", "."],
        [sys.executable, "-m", "ruff", "format", "--check", "."],
        [sys.executable, "-m", "mypy", "."],
        # The layers contract in pyproject.toml ([tool.importlinter]).
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        [sys.executable, "-m", "pytest", *extra_pytest_args],
    ]
    for step in steps:
        print(f"\n$ {_shown(step)}", flush=True)
        code = subprocess.call(step)
        if code != 0:
            print(f"\nFAILED: {_shown(step)} (exit {code})", flush=True)
            return code
    print("\nall checks passed", flush=True)
    return 0


def test(extra_pytest_args: list[str]) -> int:
    url = os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)
    if redis_answers(url):
        print(f"using the Redis at {url}", flush=True)
        os.environ["REDIS_URL"] = url
        return run_checks(extra_pytest_args)
    print(f"no Redis answers at {url}: starting an embedded one", flush=True)
    with EmbeddedRedis() as embedded:
        os.environ["REDIS_URL"] = embedded.url
        return run_checks(extra_pytest_args)


def demo(args: list[str]) -> int:
    return subprocess.call([sys.executable, "-m", "ops.cli", "demo", *args])


def pytest_args(test_args: list[str]) -> list[str]:
    """pytest's arguments for ``test`` with these: ``--fast`` (anywhere) leaves out the
    integration tier, the rest pass through in order."""
    passed = [arg for arg in test_args if arg != FAST]
    return [*FAST_PYTEST_ARGS, *passed] if FAST in test_args else passed


def main() -> int:
    command, args = sys.argv[1], sys.argv[2:]
    return test(pytest_args(args)) if command == "test" else demo(args)


if __name__ == "__main__":
    sys.exit(main())
