"""Which parameter a 400 says the model refuses, in each provider's words.

The bodies, as the services answer today (quoted in public issue threads):

* OpenAI and Azure: ``{"error": {"message": "Unsupported value: 'temperature' does not support
  0.2 with this model. Only the default (1) value is supported.", "type":
  "invalid_request_error", "param": "temperature", "code": "unsupported_value"}}``, and
  ``"Unsupported parameter: 'stop' is not supported with this model."`` with
  ``code: unsupported_parameter``: ``error.param`` names it.
* xAI: ``{"code": "Client specified an invalid argument", "error": "Argument not supported on
  this model: stop"}``.
* Anthropic, and Bedrock passing Anthropic's message through (InvokeModel as is, Converse after
  "The model returned the following errors: "): "`temperature` is deprecated for this model.",
  and "This model does not support assistant message prefill. The conversation must end with a
  user message.", which names no parameter: we call it ``assistant_prefill``.

Wire names are read as ``CompletionRequest``'s (``topP``, ``stop_sequences`` -> ``top_p``,
``stop``), so the job knows what to leave out.
"""

from __future__ import annotations

import re

from routing.capabilities import ASSISTANT_PREFILL

#: OpenAI's codes for a parameter (or a value of it) this model does not take.
OPENAI_CODES = frozenset({"unsupported_parameter", "unsupported_value"})

_REQUEST_NAMES = {
    "temperature": "temperature",
    "top_p": "top_p",
    "topp": "top_p",
    "stop": "stop",
    "stop_sequences": "stop",
    "stopsequences": "stop",
}
_PREFILL = "does not support assistant message prefill"
_PATTERNS = (
    re.compile(r"`?([A-Za-z_]+)`? is deprecated for this model"),  # Anthropic
    re.compile(r"argument not supported on this model:\s*`?([A-Za-z_]+)", re.IGNORECASE),  # xAI
    re.compile(r"unsupported (?:parameter|value): '([A-Za-z_]+)'", re.IGNORECASE),  # OpenAI
)


def request_name(wire_name: str) -> str:
    """``topP`` -> ``top_p``; a name turnout does not send is kept as the provider wrote it."""
    return _REQUEST_NAMES.get(wire_name.lower(), wire_name)


def refused_in(message: str) -> str | None:
    """The parameter a refusal's message names (``assistant_prefill`` for a prefill refusal),
    or None when the message is no such refusal."""
    if _PREFILL in message.lower():
        return ASSISTANT_PREFILL
    for pattern in _PATTERNS:
        found = pattern.search(message)
        if found:
            return request_name(found.group(1))
    return None
