"""How today's services answer ordinary requests in ways that are not plain successes, for the
simulators of models named like the real ones (issue 11's cases 5-9).

* Groq refuses a request whose prompt and ``max_tokens`` together exceed its tier's tokens per
  minute with a 413 ``rate_limit_exceeded`` (the body public issue threads quote), whatever the
  model's context window: on_demand allows llama-3.1-8b-instant 6000, llama-3.3-70b-versatile
  12000, the gpt-oss models 8000 (``Faults.tpm_limit`` overrides).
* Bedrock words a context overflow as a ValidationException: Claude's "input length and
  `max_tokens` exceed context limit: A + B > W, ...", other models' "too many total text
  bytes" (``Faults.context_window`` gives the model a window small enough to reach in a test).
* Mistral's Magistral models answer ``content`` as chunks, a ``thinking`` one before the text.
* OpenAI's reasoning models (o1, o3, o4-mini, gpt-5...) think before they answer, and the
  thinking counts against ``max_completion_tokens``: with a budget no larger than the thinking,
  the answer is ``content: ""`` with ``finish_reason: "length"``.
* Gemini's thinking models likewise: MAX_TOKENS with no answer part (thoughts only, when
  ``includeThoughts``) once the thinking has spent ``maxOutputTokens``.

Pure functions; each simulator calls the ones of its protocol.
"""

from __future__ import annotations

import re
from typing import Any

#: Tokens a simulated reasoning model thinks before it answers (the Gemini simulator's budget
#: cap is the same 64).
REASONING_TOKENS = 64

#: Groq's on_demand tokens per minute, per model (as the 413s in public threads quote them).
GROQ_ON_DEMAND_TPM = {
    "llama-3.1-8b-instant": 6000,
    "llama-3.3-70b-versatile": 12000,
    "openai/gpt-oss-20b": 8000,
    "openai/gpt-oss-120b": 8000,
}

_REASONING_MODEL = re.compile(r"^(?:o\d(?:-|$)|gpt-5)")


def is_groq(name: str) -> bool:
    return name.startswith("groq")


def groq_tpm_limit(model: str, override: int | None) -> int | None:
    return override if override is not None else GROQ_ON_DEMAND_TPM.get(model)


def groq_too_large(model: str, limit: int, requested: int, reset_s: float | None) -> Any:
    """(status, body, headers) of Groq's 413 for a request over its tier's TPM."""
    message = (
        f"Request too large for model `{model}` in organization `org_01simulatedgroq` service "
        f"tier `on_demand` on tokens per minute (TPM): Limit {limit}, Requested {requested}, "
        "please reduce your message size and try again. Need more tokens? Upgrade to Dev Tier "
        "today at https://console.groq.com/settings/billing"
    )
    headers = [
        (b"x-ratelimit-limit-tokens", str(limit).encode()),
        (b"x-ratelimit-remaining-tokens", str(limit).encode()),
    ]
    if reset_s is not None:
        headers.append((b"x-ratelimit-reset-tokens", go_duration(reset_s).encode()))
    body = {"error": {"message": message, "type": "tokens", "code": "rate_limit_exceeded"}}
    return 413, body, headers


def go_duration(seconds: float) -> str:
    """``7.66s``, ``2m59.56s``: how Groq and OpenAI write ``x-ratelimit-reset-*``."""
    minutes, rest = divmod(seconds, 60)
    text = f"{rest:.2f}".rstrip("0").rstrip(".") + "s"
    return f"{int(minutes)}m{text}" if minutes else text


def is_reasoning_model(model: str) -> bool:
    """OpenAI's o-series and gpt-5 family (a ``-chat`` variant does not reason)."""
    return bool(_REASONING_MODEL.match(model)) and not model.endswith("-chat-latest")


def is_magistral(model: str) -> bool:
    return model.startswith("magistral")


def magistral_content(text: str) -> list[dict[str, Any]]:
    """A Magistral reply: a thinking chunk, then the answer as a text chunk."""
    thinking = [{"type": "text", "text": "The user asks something; answer briefly."}]
    return [{"type": "thinking", "thinking": thinking}, {"type": "text", "text": text}]


def bedrock_overflow(model: str, prompt_tokens: int, max_tokens: int, window: int) -> str | None:
    """Bedrock's ValidationException message when the prompt does not fit ``window``."""
    if "anthropic." in model:
        if prompt_tokens + max_tokens <= window:
            return None
        return (
            f"input length and `max_tokens` exceed context limit: {prompt_tokens} + "
            f"{max_tokens} > {window}, decrease input length or `max_tokens` and try again"
        )
    if prompt_tokens <= window:
        return None
    return "too many total text bytes"
