"""What a model accepts: its optional request parameters, reasoning, assistant prefill, tools,
JSON schema output, images, its context window and where it is served.

The table is data (``data/models.json``, section ``capabilities``), and where a provider's rule is
a version cut-off it says so as a version rule rather than a list of ids: "Claude 4.7 and later
refuse sampling parameters" is one rule with ``min_version: "4.7"``, so ``claude-opus-4-8`` is
known the day it ships. Rules apply in order; every rule that matches the model id (a regex
searched, case-insensitively, in the id as ``routing.prices`` normalises it: Bedrock's region
prefix and Gemini's ``models/`` removed) sets its fields over the earlier ones. A field no rule
sets keeps the default; ``None`` means the table does not know.

Why these rules (the refusals, verified in public issue threads and the SDKs' docs):

* OpenAI o-series and gpt-5 (chat variants excepted) are reasoning models
  (``max_completion_tokens``), and answer 400 ``unsupported_value`` for a ``temperature`` or
  ``top_p`` other than 1; o3, o3-pro, o4-mini and gpt-5 also refuse ``stop``
  (``unsupported_parameter``; the openai SDK's ``completion_create_params.py``:
  "Not supported with latest reasoning models o3 and o4-mini").
* Claude 4.7 and later answer 400 "`temperature` is deprecated for this model" (and so for
  ``top_p``), on Anthropic and on Bedrock alike; Claude 4.6 and later refuse a conversation that
  ends with an assistant turn ("does not support assistant message prefill").
* xAI's Grok reasoning models (grok-3-mini, grok-4, grok-code) answer 400 "Argument not
  supported on this model: stop".

A deployment may correct the table (``DeploymentConfig.capabilities``) and name the model it
serves when its ``model`` is a name of its own (``base_model``: Azure deployments). What the
fleet learns from a refusal at run time (workers.parameter_lessons) is applied over both.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from functools import cache
from importlib.resources import files
from typing import Any, Literal, get_args

from routing.prices import model_info, normalised_model

#: The optional request parameters turnout sends, in the names of ``CompletionRequest``.
Parameter = Literal["temperature", "top_p", "stop"]
PARAMETERS: tuple[Parameter, ...] = get_args(Parameter)
#: Not a parameter but refused like one: a conversation ending with an assistant turn.
ASSISTANT_PREFILL = "assistant_prefill"

_FALLBACK_PROVIDER = {"azure": "openai", "vertex": "gemini"}


@dataclass(frozen=True)
class ModelCapabilities:
    """What one model accepts (a deployment's, with its overrides, via
    ``DeploymentConfig.model_capabilities``)."""

    #: The optional parameters it accepts; any other one the request sets is refused.
    parameters: frozenset[Parameter]
    #: A reasoning model: ``max_completion_tokens``, and sampling parameters mostly refused.
    reasoning: bool
    #: Accepts a conversation that ends with an assistant turn (continues it).
    assistant_prefill: bool
    tools: bool | None
    json_schema: bool | None
    images: bool | None
    #: Takes a reasoning effort (OpenAI's ``reasoning_effort``, Anthropic's thinking budget).
    reasoning_effort: bool | None
    #: Tokens of prompt and output together; None when unknown.
    context_window: int | None
    #: Where it is served (Vertex locations), None: anywhere its provider serves it.
    locations: tuple[str, ...] | None
    #: The rules that decided these values, last first ("claude >= 4.7"): for messages.
    families: tuple[str, ...] = ()

    def accepts(self, parameter: str) -> bool:
        if parameter == ASSISTANT_PREFILL:
            return self.assistant_prefill
        return parameter in self.parameters

    def refusing(self, refused: frozenset[str]) -> ModelCapabilities:
        """These capabilities less what the fleet learnt this model refuses."""
        if not refused:
            return self
        return replace(
            self,
            parameters=frozenset(p for p in self.parameters if p not in refused),
            assistant_prefill=self.assistant_prefill and ASSISTANT_PREFILL not in refused,
        )


@dataclass(frozen=True)
class _Rule:
    family: str
    providers: frozenset[str]
    pattern: re.Pattern[str]
    min_version: tuple[int, int] | None
    values: dict[str, Any]

    def applies(self, provider: str, model: str) -> bool:
        if provider not in self.providers:
            return False
        found = self.pattern.search(model)
        if found is None:
            return False
        if self.min_version is None:
            return True
        groups = found.groupdict()
        major = groups.get("major")
        if major is None:
            return False
        minor = groups.get("minor")
        return (int(major), int(minor) if minor else 0) >= self.min_version


@cache
def model_capabilities(provider: str, model: str) -> ModelCapabilities:
    """The table's capabilities of ``model`` served by ``provider`` (Azure as OpenAI's models,
    Vertex as Gemini's and Claude's), the defaults where no rule speaks."""
    provider = provider.lower()
    normal = normalised_model(provider, model.lower())
    defaults, rules = _table()
    values = dict(defaults)
    families: list[str] = []
    names = {provider, _FALLBACK_PROVIDER.get(provider, provider)}
    for rule in rules:
        if any(rule.applies(name, normal) for name in names):
            values.update(rule.values)
            families.insert(0, rule.family)
    info = model_info(provider, model)
    return ModelCapabilities(
        parameters=frozenset(values["parameters"]),
        reasoning=bool(values["reasoning"]),
        assistant_prefill=bool(values["assistant_prefill"]),
        tools=values["tools"],
        json_schema=values["json_schema"],
        images=values["images"],
        reasoning_effort=values["reasoning_effort"],
        context_window=info.context_window if info else None,
        locations=tuple(values["locations"]) if values["locations"] is not None else None,
        families=tuple(families),
    )


_FIELDS = frozenset(
    {
        "parameters",
        "reasoning",
        "assistant_prefill",
        "tools",
        "json_schema",
        "images",
        "reasoning_effort",
        "locations",
    }
)


@cache
def _table() -> tuple[dict[str, Any], tuple[_Rule, ...]]:
    text = files("routing").joinpath("data/models.json").read_text(encoding="utf-8")
    section = json.loads(text)["capabilities"]
    defaults = dict(section["defaults"])
    _check_fields(defaults, "defaults")
    if set(defaults) != _FIELDS:
        raise ValueError(f"capabilities.defaults must set {sorted(_FIELDS)}")
    rules = []
    for entry in section["rules"]:
        _check_fields(entry["set"], entry["family"])
        version = entry.get("min_version")
        rules.append(
            _Rule(
                family=entry["family"],
                providers=frozenset(p.lower() for p in entry["providers"]),
                pattern=re.compile(entry["match"], re.IGNORECASE),
                min_version=_version(version) if version else None,
                values=dict(entry["set"]),
            )
        )
    return defaults, tuple(rules)


def _check_fields(values: dict[str, Any], where: str) -> None:
    unknown = set(values) - _FIELDS
    if unknown:
        raise ValueError(f"capabilities {where}: unknown fields {sorted(unknown)}")
    for parameter in values.get("parameters") or ():
        if parameter not in PARAMETERS:
            raise ValueError(f"capabilities {where}: unknown parameter {parameter!r}")


def _version(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor or 0)
