"""Prompt-size and cost estimates, for budget and context-window decisions before a call.

They are estimates, biased slightly high on purpose: underestimating sends a prompt to a target
it does not fit (a failed call, a wasted attempt), while overestimating only skips a target that
would have fitted by a small margin.

How a prompt is counted::

    tokens = sum(content_tokens(m) + TOKENS_PER_MESSAGE for m in messages) + TOKENS_PER_REPLY

``TOKENS_PER_MESSAGE`` (role and delimiters) and ``TOKENS_PER_REPLY`` (the primed assistant
turn) follow OpenAI's counting guide. ``content_tokens`` is exact for OpenAI models when
tiktoken is installed (an optional extra): ``o200k_base`` for gpt-4o, gpt-4.1, gpt-5 and the
o-series, ``cl100k_base`` for everything else, where it stands in for a tokenizer we do not
have. Without tiktoken it is ``ceil(len(content) / CHARS_PER_TOKEN)``; English prose and code
average about four characters per token, and rounding up per message leans high. Scripts such
as Chinese or Japanese take about one token per character, so this fallback undercounts them.
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Sequence
from functools import cache
from typing import Protocol, cast

from routing.models import Message
from routing.prices import ModelInfo

TOKENS_PER_MESSAGE = 4
TOKENS_PER_REPLY = 3
CHARS_PER_TOKEN = 4

# Model ids (optionally after a vendor prefix such as OpenRouter's "openai/") on o200k_base.
_O200K_MODELS = re.compile(
    r"(?:^|/)(?:chatgpt-4o|gpt-4o|gpt-4\.[15]|gpt-5|gpt-oss|o[134])(?:$|[-.:@])"
)


class _Encoding(Protocol):
    def encode(self, text: str, *, disallowed_special: tuple[str, ...]) -> list[int]: ...


def estimate_prompt_tokens(messages: Sequence[Message], *, model: str | None = None) -> int:
    """Tokens the messages take as a prompt, erring slightly high (see the module docstring)."""
    encoding = _encoding(_encoding_name(model))
    total = TOKENS_PER_REPLY
    for message in messages:
        if encoding is not None:
            # A prompt that mentions "<|endoftext|>" is text, not a special token.
            content = len(encoding.encode(message.content, disallowed_special=()))
        else:
            content = math.ceil(len(message.content) / CHARS_PER_TOKEN)
        total += content + TOKENS_PER_MESSAGE
    return total


def estimate_cost_usd(
    info: ModelInfo | None, prompt_tokens: int, completion_tokens: int
) -> float | None:
    """Cost at list prices, or ``None`` when the model or either of its prices is unknown:
    an unknown cost must not pass for a free one."""
    if prompt_tokens < 0 or completion_tokens < 0:
        raise ValueError("token counts cannot be negative")
    if info is None or info.input_cost_per_mtok is None or info.output_cost_per_mtok is None:
        return None
    return (
        prompt_tokens * info.input_cost_per_mtok + completion_tokens * info.output_cost_per_mtok
    ) / 1_000_000


def _encoding_name(model: str | None) -> str:
    if model is not None and _O200K_MODELS.search(model.lower()):
        return "o200k_base"
    return "cl100k_base"


@cache
def _encoding(name: str) -> _Encoding | None:
    """tiktoken's encoding, or ``None`` without it. tiktoken downloads its BPE files on first
    use, so an offline worker gets ``None`` too and falls back to counting characters."""
    try:
        tiktoken = importlib.import_module("tiktoken")
        return cast(_Encoding, tiktoken.get_encoding(name))
    except Exception:
        return None
