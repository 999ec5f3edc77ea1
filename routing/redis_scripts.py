"""The registry of turnout's Lua scripts: every state change in Redis is one of them.

The scripts are files in ``routing/scripts`` (package data), one per script, each headed by a
comment naming its KEYS, ARGV and reply (tests/routing/test_redis_scripts.py holds every file to
that and SCRIPT LOADs each one). A file whose header has a ``-- Prepend: <file>`` line gets that
file put before it: ``_clock.lua``, the one preamble that reads Redis's clock. Files whose name
starts with ``_`` are such preambles, never scripts of their own.

The files are read once, on first use; JobStore, FleetRouter, the health checks and the
operators' breaker actions register ``source(name)`` with redis-py.
"""

from __future__ import annotations

import functools
from importlib.resources import files
from typing import Literal, get_args

ScriptName = Literal[
    "acquire_route",
    "admin_breaker",
    "announce_worker",
    "claim_health_checks",
    "claim_job",
    "create_job",
    "delete_job",
    "deliver_message",
    "fetch_message",
    "finish_and_record",
    "finish_job",
    "reclaim_consumers",
    "reconcile_due",
    "record_health",
    "record_outcome",
    "release_job",
    "renew_leases",
    "write_key",
]
SCRIPT_NAMES: tuple[ScriptName, ...] = get_args(ScriptName)

#: Where the files are, inside the ``routing`` package.
SCRIPTS_FOLDER = "scripts"
_PREPEND = "-- Prepend:"
_COMPOSE = "-- Compose:"


def source(name: ScriptName) -> str:
    """The script as Redis runs it: its preambles, then the file itself."""
    return _sources()[name]


def read_file(file_name: str) -> str:
    """One file of the folder, as shipped."""
    return files("routing").joinpath(SCRIPTS_FOLDER, file_name).read_text(encoding="utf-8")


def folder_files() -> list[str]:
    """The names of every ``.lua`` file in the folder (preambles included)."""
    folder = files("routing").joinpath(SCRIPTS_FOLDER)
    return sorted(entry.name for entry in folder.iterdir() if entry.name.endswith(".lua"))


def preambles_of(text: str) -> list[str]:
    """The files a script's header asks to have put before it, in order."""
    return [
        line.removeprefix(_PREPEND).strip()
        for line in text.splitlines()
        if line.startswith(_PREPEND)
    ]


def composed_of(text: str) -> list[str]:
    """The scripts a script's header says it runs in its own run, in order."""
    return [
        name
        for line in text.splitlines()
        if line.startswith(_COMPOSE)
        for name in line.removeprefix(_COMPOSE).split()
    ]


def _composed(text: str) -> str:
    parts = composed_of(text)
    preambles: list[str] = []
    for part in [text, *(read_file(f"{name}.lua") for name in parts)]:
        preambles += [p for p in preambles_of(part) if p not in preambles]
    functions = "".join(
        f"local function {name}(KEYS, ARGV)\n{read_file(f'{name}.lua')}\nend\n" for name in parts
    )
    return "".join(read_file(p) for p in preambles) + functions + text


@functools.cache
def _sources() -> dict[str, str]:
    sources: dict[str, str] = {}
    for name in SCRIPT_NAMES:
        sources[name] = _composed(read_file(f"{name}.lua"))
    return sources
