"""What users import from turnout is a contract: its names, its types, its error tree.

After httpx's ``tests/test_exported_members.py``: ``producers.__all__`` is exactly the public
names of the package, each one resolves, and the list itself is pinned here, so dropping or
renaming a name is a deliberate change to this file, never an accident.
"""

from __future__ import annotations

import importlib
import inspect
import re
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

import producers
from producers.batch_plan import BatchInputError
from producers.openai_format import UnknownModel
from routing import errors
from routing.errors import (
    InvalidRequest,
    JobNotFound,
    RedisUnavailable,
    SubmitError,
    TurnoutError,
)

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("producers", "routing", "workers", "ops")

PINNED = {
    "AsyncJobHandle",
    "Client",
    "CompletionRequest",
    "CompletionResult",
    "ConfigError",
    "InvalidRequest",
    "JobFailed",
    "JobHandle",
    "JobNotFound",
    "JobTimeout",
    "Message",
    "RedisUnavailable",
    "RoutingPolicy",
    "SubmitError",
    "TurnoutError",
}


def test_all_is_exactly_the_public_names_of_producers():
    public = {
        name
        for name, value in vars(producers).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
    }
    assert set(producers.__all__) == public
    assert len(producers.__all__) == len(set(producers.__all__)), "a name listed twice"


def test_every_exported_name_resolves():
    for name in producers.__all__:
        assert getattr(producers, name) is not None, name


def test_the_exported_names_are_pinned():
    assert set(producers.__all__) == PINNED


@pytest.mark.parametrize("package", PACKAGES)
def test_every_package_ships_py_typed(package):
    assert (ROOT / package / "py.typed").is_file()
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "py.typed" in config["tool"]["setuptools"]["package-data"][package]


# --- the error tree -------------------------------------------------------------------------

#: Where the classes the tree names live (the tree says which module, for those outside).
TREE_MODULES = ("routing.errors", "producers.openai_format", "producers.batch_plan")
BRANCH = re.compile(r"^(?P<indent>[ │]*)[├└]── (?P<name>\w+)")


def drawn_tree() -> dict[str, str]:
    """Class name -> the name of its parent, as routing/errors.py's docstring draws them."""
    assert errors.__doc__ is not None
    lines = errors.__doc__.splitlines()
    root_at = next(i for i, line in enumerate(lines) if line.strip() == "TurnoutError")
    parents = {"TurnoutError": ""}
    stack = ["TurnoutError"]  # the open branch at each depth
    base = len(lines[root_at]) - len(lines[root_at].lstrip())
    for line in lines[root_at + 1 :]:
        match = BRANCH.match(line)
        if match is None:
            if line.strip() and not line.strip().startswith("│") and line[:base].strip():
                break
            continue
        depth = (len(match["indent"]) - base) // 4 + 1
        del stack[depth:]
        parents[match["name"]] = stack[-1]
        stack.append(match["name"])
    return parents


def turnout_errors() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for module_name in TREE_MODULES:
        module = importlib.import_module(module_name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, TurnoutError)
                and value.__module__ == module_name
            ):
                found[name] = value
    return found


def test_the_drawn_tree_names_every_turnout_error_and_only_those():
    assert set(drawn_tree()) == set(turnout_errors())


def test_each_error_subclasses_the_parent_the_tree_draws():
    classes = turnout_errors()
    for name, parent in drawn_tree().items():
        if parent:
            assert classes[parent] in classes[name].__bases__, f"{name} is not under {parent}"


def test_the_producer_errors_sit_where_the_tree_says():
    assert issubclass(SubmitError, TurnoutError)
    assert issubclass(RedisUnavailable, SubmitError), "caught where a SubmitError was"
    assert issubclass(BatchInputError, InvalidRequest)
    assert issubclass(UnknownModel, InvalidRequest)
    assert issubclass(JobNotFound, TurnoutError)
    assert issubclass(JobNotFound, LookupError)
    assert not issubclass(JobNotFound, InvalidRequest), "a missing job is not bad input"
    missing = JobNotFound("abc")
    assert missing.job_id == "abc"
    assert str(missing) == "no job abc (never submitted, or expired)"
