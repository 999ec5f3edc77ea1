"""Reading a config file into plain data, safely: whatever the file holds, the answer is data or a
ConfigError, within a second and in bounded memory.

``yaml.safe_load`` alone lets through what the attack run used against every command that loads
the config: a YAML bomb (nine levels of aliases expand to 387 million strings: pydantic walking
it, or an error message holding its ``repr``, hung the process at 1.5 GB), nesting deep enough
to exhaust Python's stack, integers of thousands of digits (Python refuses to convert them), a
file that is not UTF-8, and duplicate keys, which YAML resolves silently by keeping the last.
This loader refuses each with the file, the place and what to do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node

from routing.errors import ConfigError

#: Values a config may expand to, counting each use of an alias anew: a real config has a few
#: hundred; a bomb has millions.
MAX_EXPANDED_VALUES = 100_000
#: Nesting a config may have: real ones are 5 or 6 deep.
MAX_DEPTH = 50
#: The largest config file read: real ones are a few KB; a bigger one (or /dev/zero named by
#: mistake) is refused before it is read whole.
MAX_FILE_BYTES = 1024 * 1024


class _ConfigLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys in a mapping."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # what ``<<: *anchor`` brings in may be overridden: not a duplicate
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: SafeLoader's own error says so below
                break
            if duplicate:
                first = seen[key].start_mark
                raise ConstructorError(
                    None,
                    None,
                    f"duplicate key {_short(key)} (first at line {first.line + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def read_config_data(path: str | Path) -> Any:
    """The file's YAML as plain data; ConfigError naming the file and the fix otherwise."""
    source = str(path)
    try:
        with Path(path).open("rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(
            f"{source}: cannot read the config file ({exc.strerror or exc}); "
            "fix: set TURNOUT_CONFIG to the path of an existing YAML file"
        ) from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(
            f"{source}: larger than {MAX_FILE_BYTES // 1024} KiB; fix: point TURNOUT_CONFIG at the "
            "YAML file of deployments and policies (a few KB)"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{source}: not UTF-8 text (byte {exc.start} is {raw[exc.start]:#04x}); "
            "fix: save the file as UTF-8"
        ) from None
    try:
        _check_depth(text, source)
        data = yaml.load(text, Loader=_ConfigLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(
            f"{source}: not valid YAML{where}: {problem}; fix: correct the YAML syntax there"
        ) from None
    except RecursionError:
        raise ConfigError(
            f"{source}: nested too deeply to read; fix: a config is a few levels deep"
        ) from None
    except ValueError as exc:  # an integer of more digits than Python converts
        raise ConfigError(f"{source}: {_short(str(exc), 120)}; fix: use a smaller number") from None
    check_size(data, source)
    return data


def _check_depth(text: str, source: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH before anything is built: the parser's events come
    one at a time (no recursion), where PyYAML's composer recurses once per level and takes
    over a second to reach Python's recursion limit on 5,000 levels."""
    depth = values = 0
    for event in yaml.parse(text, Loader=_EVENT_LOADER):
        if isinstance(event, yaml.NodeEvent):
            values += 1  # each written value once: what an alias repeats is counted later
            if values > MAX_EXPANDED_VALUES:
                raise ConfigError(
                    f"{source}: holds more than {MAX_EXPANDED_VALUES:,} values; fix: a config "
                    "holds a few hundred"
                )
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise ConfigError(
                    f"{source}: nested more than {MAX_DEPTH} levels deep; "
                    "fix: a config is a few levels deep"
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


#: libyaml's parser where PyYAML was built with it (it is, in the wheels), else PyYAML's own.
_EVENT_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def check_size(data: Any, source: str) -> None:
    """Refuse data that expands to more than MAX_EXPANDED_VALUES values or nests deeper than
    MAX_DEPTH, without expanding it: each distinct container is visited once (aliases share
    their objects), and its expanded size is computed, not built."""
    sizes: dict[int, int] = {}

    def size_of(value: Any, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise ConfigError(
                f"{source}: nested more than {MAX_DEPTH} levels deep; "
                "fix: a config is a few levels deep"
            )
        if isinstance(value, dict):
            children: Any = [*value.keys(), *value.values()]
        elif isinstance(value, list):
            children = value
        else:
            return 1
        known = sizes.get(id(value))
        if known is not None:
            return known
        total = 1 + sum(size_of(child, depth + 1) for child in children)
        if total > MAX_EXPANDED_VALUES:
            raise ConfigError(
                f"{source}: expands to more than {MAX_EXPANDED_VALUES:,} values (YAML aliases "
                "repeated inside each other?); fix: write the config out without nested aliases"
            )
        sizes[id(value)] = total
        return total

    size_of(data, 0)


def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
