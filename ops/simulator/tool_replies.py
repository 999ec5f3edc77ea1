"""What a simulated model answers to tools and to a JSON schema, for every protocol's simulator.

A model offered tools whose conversation does not end with a tool's result calls one (the named
one, else the first), with arguments that match its parameters' schema; after a tool result it
answers in text that quotes the result, so a test sees the round trip. Asked for a JSON schema,
it answers the smallest instance of the schema (``instance_of``), or, under the
``invalid_json_rate`` fault, text that is not JSON.
"""

from __future__ import annotations

import json
from typing import Any


def instance_of(schema: Any, depth: int = 0) -> Any:
    """A value matching ``schema`` (the subset of JSON Schema structured outputs allow: types,
    properties and required, enums, consts, arrays, anyOf, $defs references are not followed)."""
    if not isinstance(schema, dict) or depth > 8:
        return None
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for union in ("anyOf", "oneOf", "allOf"):
        if schema.get(union):
            return instance_of(schema[union][0], depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties") or {}
        return {name: instance_of(sub, depth + 1) for name, sub in properties.items()}
    if kind == "array":
        least = int(schema.get("minItems", 1))
        return [instance_of(schema.get("items", {}), depth + 1) for _ in range(least)]
    if kind == "string":
        least = int(schema.get("minLength", 0))
        return "sim" + "x" * max(least - 3, 0)
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 1.5))
    if kind == "boolean":
        return True
    return None


def structured_text(schema: Any, broken: bool) -> str:
    if broken:
        return "Sure! Here is the JSON you asked for: {'not': json"
    return json.dumps(instance_of(schema))


def chosen_tool(tools: list[dict[str, Any]], named: str | None) -> tuple[str, Any]:
    """(name, parameters schema) of the tool the simulated model calls."""
    for tool in tools:
        if named is None or tool["name"] == named:
            return tool["name"], tool.get("schema")
    return tools[0]["name"], tools[0].get("schema")
