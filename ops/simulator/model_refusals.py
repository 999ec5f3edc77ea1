"""What today's services refuse of a model named like the real one, with their exact bodies.

Written from the services' answers (quoted in public issue threads), not from turnout's model
table (routing.capabilities): a simulator that read the table would agree with any mistake in it.

* OpenAI (and Azure, which passes OpenAI's errors through) for reasoning models, o-series and
  gpt-5 (not gpt-5-chat): ``max_tokens`` (use ``max_completion_tokens``), a ``temperature`` or
  ``top_p`` other than 1 (``unsupported_value``), and for o3, o3-pro, o4-mini and gpt-5 ``stop``
  (``unsupported_parameter``). One refusal per reply, in that order.
* xAI for Grok reasoning models (grok-3-mini, grok-4, grok-code): ``stop``, as
  ``{"code": "Client specified an invalid argument", "error": "Argument not supported on this
  model: stop"}``.
* Anthropic for Claude 4.7 and later: any sampling parameter, "`temperature` is deprecated for
  this model."; for Claude 4.6 and later a conversation ending with an assistant turn, "This
  model does not support assistant message prefill. The conversation must end with a user
  message." Bedrock answers the same messages as ValidationException (Converse prefixes "The
  model returned the following errors: ").
"""

from __future__ import annotations

import re
from typing import Any

_OPENAI_REASONING = re.compile(r"^o[1-9](?![0-9a-z])|^gpt-5(?![0-9])(?!.*-chat)")
_OPENAI_NO_STOP = re.compile(r"^(o3(-pro)?|o4-mini)($|-[0-9]{4})|^gpt-5(?![0-9])(?!.*-chat)")
_GROK_REASONING = re.compile(r"^grok-(3-mini|4|code)")
_CLAUDE = re.compile(r"claude-(?:opus|sonnet|haiku)-(\d+)(?:[-.](\d{1,2})(?!\d))?")

PREFILL_REFUSAL = (
    "This model does not support assistant message prefill. The conversation must end with a "
    "user message."
)


def _openai_error(message: str, param: str, code: str) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": param,
            "code": code,
        }
    }


def openai_refusal(model: str, request: dict[str, Any]) -> dict[str, Any] | None:
    """The 400 body api.openai.com answers this request to ``model`` with, or None."""
    model = model.lower()
    if _GROK_REASONING.search(model):
        if request.get("stop") is not None:
            return {
                "code": "Client specified an invalid argument",
                "error": "Argument not supported on this model: stop",
            }
        return None
    if not _OPENAI_REASONING.search(model):
        return None
    if request.get("max_tokens") is not None:
        return _openai_error(
            "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
            "'max_completion_tokens' instead.",
            "max_tokens",
            "unsupported_parameter",
        )
    for name in ("temperature", "top_p"):
        value = request.get(name)
        if value is not None and value != 1:
            return _openai_error(
                f"Unsupported value: '{name}' does not support {value} with this model. Only "
                "the default (1) value is supported.",
                name,
                "unsupported_value",
            )
    if request.get("stop") is not None and _OPENAI_NO_STOP.search(model):
        return _openai_error(
            "Unsupported parameter: 'stop' is not supported with this model.",
            "stop",
            "unsupported_parameter",
        )
    return None


def is_openai_reasoning(model: str) -> bool:
    return bool(_OPENAI_REASONING.search(model.lower()))


def claude_version(model: str) -> tuple[int, int] | None:
    found = _CLAUDE.search(model.lower())
    if found is None:
        return None
    return int(found.group(1)), int(found.group(2) or 0)


def claude_refusal(model: str, sampling: dict[str, Any], last_role: str | None) -> str | None:
    """The message Claude answers with (400 ``invalid_request_error``), or None. ``sampling``:
    the sampling parameters as the request names them (``temperature``, ``top_p``/``topP``)."""
    version = claude_version(model)
    if version is None:
        return None
    if version >= (4, 7):
        for name, value in sampling.items():
            if value is not None:
                return f"`{name}` is deprecated for this model."
    if version >= (4, 6) and last_role == "assistant":
        return PREFILL_REFUSAL
    return None
