"""Checking a reply against the JSON schema its request asked for (``response_format``
``json_schema``), with the ``jsonschema`` library.

No provider guarantees its output matches: strict modes narrow it, but models without them,
refusals and cut-off replies do not. A batch of 100k extractions needs every line to parse, so
a reply that is not JSON, or does not match, is ``InvalidOutput``: retried and failed over
(routing.errors), never a success. Pure.
"""

from __future__ import annotations

import json
from typing import Any

from jsonschema import exceptions as schema_errors
from jsonschema import validators

from routing.errors import InvalidOutput
from routing.models import CompletionRequest, ProviderCompletion

#: Characters of the reply quoted in the attempt log.
_QUOTED = 120


def checked_output(
    request: CompletionRequest, completion: ProviderCompletion
) -> ProviderCompletion:
    """``completion`` with ``parsed`` set when ``request`` asks for a JSON schema and the reply
    matches it; InvalidOutput when it does not. Unchanged for other requests, and for a reply
    that only calls tools (it answers with calls, not the schema)."""
    schema = request.output_schema
    if schema is None or (completion.tool_calls and not completion.text.strip()):
        return completion
    parsed = parse_against(schema, completion.text)
    return completion.model_copy(update={"parsed": parsed})


def parse_against(schema: dict[str, Any], text: str) -> Any:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidOutput(
            f"the reply is not JSON ({exc.msg} at {exc.pos}): {text[:_QUOTED]!r}",
            status_code=200,
        ) from None
    validator_class = validators.validator_for(schema, default=validators.Draft202012Validator)
    error = schema_errors.best_match(validator_class(schema).iter_errors(value))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        raise InvalidOutput(
            f"the reply does not match the schema at {where}: {error.message[:_QUOTED]}",
            status_code=200,
        )
    return value
