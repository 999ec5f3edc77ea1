"""The YAML config: deployments (provider + model + credential) and named routing policies.

Every problem is reported with the file, the key path and how to fix it, all at once, so a
broken config takes one edit, not one per error.
"""

from __future__ import annotations

import dataclasses
import difflib
import reprlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from pydantic_core import ErrorDetails

from routing.breaker import BreakerOverrides, BreakerSettings
from routing.capabilities import ModelCapabilities, Parameter, model_capabilities
from routing.catalog import PROVIDERS, Protocol, ProviderSpec
from routing.config_file import read_config_data
from routing.embeddings import mixed_dimensions, table_dimensions
from routing.errors import ConfigError
from routing.health import HealthOverrides, HealthSettings
from routing.model_names import contradiction, expand_shorthand
from routing.models import Identifier, Lane, RoutingPolicy
from routing.prices import ModelInfo, model_info
from routing.tokens import estimate_cost_usd

EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
#: An AWS region or a Vertex location: ``us-east-1``, ``europe-west4``, ``global``.
RegionName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,40}$")]

#: Which deployment field stands in for which provider variable, and the providers it is for.
_DEPLOYMENT_FIELDS: dict[str, tuple[str, ...]] = {
    "region": ("bedrock",),
    "location": ("vertex",),
    "auth": ("azure",),
}

#: A key of the encrypted key store (``turnout keys set NAME``), named where a config takes a
#: key: ``store:NAME``. Workers decrypt it (workers.key_store); nothing else reads its value.
STORE_PREFIX = "store:"
StoredKeyRef = Annotated[str, StringConstraints(pattern=r"^store:[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


def stored_key_name(source: str | None) -> str | None:
    """NAME for a key source ``store:NAME``; None for an environment variable's name."""
    if source is not None and source.startswith(STORE_PREFIX):
        return source[len(STORE_PREFIX) :]
    return None


class CapabilityOverrides(BaseModel):
    """A deployment's corrections to the model table (routing.capabilities): each field set here
    replaces the table's value, for this deployment only."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    parameters: list[Parameter] | None = None
    reasoning: bool | None = None
    assistant_prefill: bool | None = None
    tools: bool | None = None
    json_schema: bool | None = None
    images: bool | None = None
    reasoning_effort: bool | None = None
    locations: list[str] | None = None


class DeploymentConfig(BaseModel):
    """One provider + model + credential: the unit turnout routes to (and, later, trips)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    id: Identifier
    provider: str
    model: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    base_url: Annotated[str, StringConstraints(pattern=r"^https?://[^\s]+$")] | None = None
    #: The variable holding the key, or a list of them: a key pool. Calls spread across the
    #: keys, and each key has its own breaker and rate limits.
    api_key_env: EnvName | list[EnvName] | None = None
    #: Keys from the encrypted key store (``store:NAME``, or a list of them), beside or instead
    #: of ``api_key_env``: a pool may mix both. Rotated and revoked without a restart.
    api_key: StoredKeyRef | list[StoredKeyRef] | None = None
    #: Prices and context window; when left out, the packaged table's (routing.prices).
    input_cost_per_mtok: float | None = Field(default=None, ge=0)
    output_cost_per_mtok: float | None = Field(default=None, ge=0)
    context_window: int | None = Field(default=None, gt=0)
    #: Requests and tokens per minute, fleet-wide (per key, for a key pool).
    rpm: int | None = Field(default=None, gt=0)
    tpm: int | None = Field(default=None, gt=0)
    #: Shares of rpm/tpm kept for one lane (``{interactive: 0.3}``): the other lanes' calls
    #: leave that much of each bucket untouched, so a batch cannot spend what the web app needs.
    reserve: dict[Lane, Annotated[float, Field(ge=0, lt=1)]] = Field(default_factory=dict)
    #: Share of traffic under the ``weighted`` strategy.
    weight: float = Field(default=1.0, gt=0)
    #: This deployment's changes to the global breaker thresholds.
    breaker: BreakerOverrides | None = None
    #: This deployment's changes to the global health checks.
    health: HealthOverrides | None = None
    #: Speak another protocol the provider also serves (``ollama``: ``openai`` for its /v1).
    protocol: Protocol | None = None
    #: Bedrock: the AWS region of this deployment (else AWS_REGION, AWS_DEFAULT_REGION, the
    #: profile's region), so one config can reach models offered in different regions.
    region: RegionName | None = None
    #: Vertex: the location of this deployment (``global``, ``us``, ``eu`` or a region; else
    #: GOOGLE_CLOUD_LOCATION, else ``global`` as google-genai defaults): Gemini 3 on Vertex is
    #: served from ``global`` only while older models live in regions.
    location: RegionName | None = None
    #: Azure: ``entra_id`` authenticates with a Microsoft Entra ID token (azure-identity's
    #: DefaultAzureCredential) instead of the resource's api-key.
    auth: Literal["api_key", "entra_id"] | None = None
    #: The model the table should look up when ``model`` is a name of the deployment's own (an
    #: Azure deployment called ``prod-reasoning`` serving ``o3``).
    base_model: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    #: Corrections to what the table says the model accepts.
    capabilities: CapabilityOverrides | None = None
    #: Provider-specific fields merged into every request body this deployment sends (top
    #: level, over turnout's own): vLLM's ``guided_json``, OpenRouter's ``provider``, ...
    extra_body: dict[str, Any] | None = None
    #: An embedding model's vector dimension, when the table does not know it (or the
    #: deployment asks for shorter vectors); a policy mixes only deployments of one dimension.
    dimensions: int | None = Field(default=None, gt=0, le=65_536)

    @property
    def vector_dimensions(self) -> int | None:
        """The deployment's ``dimensions``, else the table's for its model (routing.embeddings)."""
        if self.dimensions is not None:
            return self.dimensions
        return table_dimensions(self.provider, self.base_model or self.model)

    def held_back_from(self, lane: Lane | None) -> float:
        """The share of this deployment's rpm/tpm a call of ``lane`` must leave in the bucket:
        what the other lanes reserve (a call of unknown lane is held to every reserve)."""
        return min(0.99, sum(share for owner, share in self.reserve.items() if owner != lane))

    @property
    def spec(self) -> ProviderSpec:
        return PROVIDERS[self.provider]

    @property
    def wire_protocol(self) -> Protocol:
        return self.protocol or self.spec.protocol

    @property
    def key_envs(self) -> list[str]:
        """Where this deployment's keys come from (several for a key pool): variable names,
        then ``store:NAME`` sources of the key store."""
        if isinstance(self.api_key_env, list):
            envs = list(self.api_key_env)
        else:
            envs = [self.api_key_env] if self.api_key_env else []
        stored = self.api_key if isinstance(self.api_key, list) else [self.api_key]
        sources = envs + [ref for ref in stored if ref]
        if not sources and self.spec.key_env:
            return [self.spec.key_env]
        return sources

    @property
    def key_env(self) -> str | None:
        """The variable of this deployment's (first) key: its own ``api_key_env`` or the
        provider's."""
        return next(iter(self.key_envs), None)

    @property
    def required_envs(self) -> tuple[str, ...]:
        """The variables this deployment cannot run without: its own key variables, and the
        provider's others except a base-URL variable its ``base_url`` makes moot."""
        required: list[str] = []
        if self.spec.key_env is None and self.api_key_env is not None:
            # Bedrock API keys: named, so needed (a stored key is the key store's business)
            required.extend(e for e in self.key_envs if stored_key_name(e) is None)
        for env in self.spec.required_envs:
            if env == self.spec.key_env and self.auth == "entra_id":
                continue  # an Entra ID token replaces the key
            if env == self.spec.key_env and self.key_envs:
                required.extend(e for e in self.key_envs if stored_key_name(e) is None)
            elif not (self.base_url and env == self.spec.base_url_env):
                required.append(env)
        return tuple(required)

    @property
    def model_info(self) -> ModelInfo:
        """Prices and context window: the deployment's own, else the packaged table's."""
        known = model_info(self.provider, self.base_model or self.model)
        return ModelInfo(
            input_cost_per_mtok=self.input_cost_per_mtok
            if self.input_cost_per_mtok is not None
            else (known.input_cost_per_mtok if known else None),
            output_cost_per_mtok=self.output_cost_per_mtok
            if self.output_cost_per_mtok is not None
            else (known.output_cost_per_mtok if known else None),
            context_window=self.context_window
            if self.context_window is not None
            else (known.context_window if known else None),
        )

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        return estimate_cost_usd(self.model_info, prompt_tokens, completion_tokens)

    @property
    def model_capabilities(self) -> ModelCapabilities:
        """What this deployment's model accepts: the table's (for ``base_model`` when set),
        with the deployment's own ``capabilities`` and ``context_window`` over it."""
        known = model_capabilities(self.provider, self.base_model or self.model)
        changes: dict[str, Any] = {}
        if self.capabilities is not None:
            for name, value in self.capabilities.model_dump(exclude_none=True).items():
                changes[name] = frozenset(value) if name == "parameters" else value
            if self.capabilities.locations is not None:
                changes["locations"] = tuple(self.capabilities.locations)
        window = self.model_info.context_window
        if window != known.context_window:
            changes["context_window"] = window
        if not changes:
            return known
        families = ("deployment config", *known.families)
        return dataclasses.replace(known, families=families, **changes)


class _ConfigFile(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    deployments: list[DeploymentConfig] = Field(min_length=1)
    #: A name for a list of deployments, usable wherever a policy names targets.
    aliases: dict[Identifier, list[Identifier]] = Field(default_factory=dict)
    policies: dict[Identifier, RoutingPolicy] = Field(default_factory=dict)
    #: Breaker thresholds for every deployment (each may override them).
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)
    #: Beat's health checks of every deployment (each may override them).
    health: HealthSettings = Field(default_factory=HealthSettings)


@dataclass(frozen=True)
class ConfigProblem:
    path: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"  {self.path}: {self.message}\n      fix: {self.fix}"


def config_error(source: str, problems: Iterable[ConfigProblem]) -> ConfigError:
    listed = list(problems)
    header = f"{source}: {len(listed)} problem{'s' if len(listed) != 1 else ''} in the config"
    return ConfigError("\n".join([header, *map(str, listed)]))


class TurnoutConfig:
    """A validated config: deployments by id, policies by name."""

    def __init__(
        self,
        deployments: Iterable[DeploymentConfig],
        policies: dict[str, RoutingPolicy] | None = None,
        *,
        aliases: dict[str, list[str]] | None = None,
        breaker: BreakerSettings | None = None,
        health: HealthSettings | None = None,
        source: str = "<config>",
    ) -> None:
        self.deployments: dict[str, DeploymentConfig] = {d.id: d for d in deployments}
        self.policies: dict[str, RoutingPolicy] = dict(policies or {})
        self.aliases: dict[str, list[str]] = dict(aliases or {})
        self.breaker = breaker or BreakerSettings()
        self.health = health or HealthSettings()
        self.source = source

    def deployment(self, deployment_id: str) -> DeploymentConfig:
        return self.deployments[deployment_id]

    def expand(self, targets: Iterable[str]) -> list[str]:
        """Deployment ids for targets that name deployments or aliases, in order, once each."""
        expanded: list[str] = []
        for target in targets:
            for name in self.aliases.get(target, [target]):
                if name not in expanded:
                    expanded.append(name)
        return expanded

    def unknown_targets(self, targets: Iterable[str]) -> list[str]:
        return [t for t in targets if t not in self.deployments and t not in self.aliases]

    def breaker_for(self, deployment: DeploymentConfig) -> BreakerSettings:
        return self.breaker.merged(deployment.breaker)

    def health_for(self, deployment: DeploymentConfig) -> HealthSettings:
        return self.health.merged(deployment.health)

    def missing_variables(self, is_set: Callable[[str], bool]) -> list[MissingVariable]:
        """Every required variable of every deployment that is unset, in config order."""
        return [
            MissingVariable(index, deployment, env)
            for index, deployment in enumerate(self.deployments.values())
            for env in deployment.required_envs
            if not is_set(env)
        ]

    def check_credentials(self, is_set: Callable[[str], bool]) -> None:
        """Raise ConfigError naming every deployment whose required variables are unset."""
        problems = [missing.problem for missing in self.missing_variables(is_set)]
        if problems:
            raise config_error(self.source, problems)


@dataclass(frozen=True)
class MissingVariable:
    """A variable a deployment needs (a key of its pool, or another the provider requires)
    that is unset where this is checked."""

    index: int
    deployment: DeploymentConfig
    env: str

    @property
    def is_key(self) -> bool:
        return self.env in self.deployment.key_envs

    @property
    def path(self) -> str:
        """Where the config names the variable: the key pool's entry, the deployment's
        ``api_key_env``, or (a provider default) the deployment itself."""
        where = f"deployments[{self.index}]"
        named = self.deployment.api_key_env
        if isinstance(named, list) and self.env in named:
            return f"{where}.api_key_env[{named.index(self.env)}]"
        if named == self.env:
            return f"{where}.api_key_env"
        return where

    @property
    def reason(self) -> str:
        return f"unusable: {self.env} is not set"

    @property
    def problem(self) -> ConfigProblem:
        what = "an API key" if self.is_key else self.env
        return ConfigProblem(
            f"deployments[{self.index}] ({self.deployment.id})",
            f"{self.deployment.provider} needs {what}, and {self.env} is not set",
            f"export {self.env}=... (or add it to .env)"
            + (
                ", or point api_key_env at the variable that holds this deployment's key"
                if self.is_key
                else ""
            ),
        )


def load_configured(config_path: Path | None) -> TurnoutConfig:
    """The config that TURNOUT_CONFIG names (``CoreSettings.config_path``), for every process
    that reads it from the environment: the one place that says what to do when it is unset."""
    if config_path is None:
        raise ConfigError(
            "TURNOUT_CONFIG is not set; fix: point it at the YAML file of deployments and "
            "policies (see README.md)"
        )
    return load_config(config_path)


def load_config(path: str | Path) -> TurnoutConfig:
    """Read and validate a config file; raise ConfigError with every problem found."""
    return parse_config(read_config_data(path), source=str(path))


def parse_config(data: Any, *, source: str = "<config>") -> TurnoutConfig:
    if not isinstance(data, dict):
        raise config_error(
            source,
            [
                ConfigProblem(
                    "(top level)",
                    "the config must be a mapping with 'deployments:' and 'policies:'",
                    "start from the example in README.md",
                )
            ],
        )
    data = _with_shorthand(data)
    problems = list(_cross_check(data))
    try:
        parsed = _ConfigFile.model_validate(data)
    except ValidationError as exc:
        problems = list(_describe(exc)) + problems
    else:
        problems += _check_breaker_overrides(parsed)
        problems += _check_vector_dimensions(parsed)
    if problems:
        raise config_error(source, problems)
    return TurnoutConfig(
        parsed.deployments,
        parsed.policies,
        aliases=parsed.aliases,
        breaker=parsed.breaker,
        health=parsed.health,
        source=source,
    )


def _with_shorthand(data: dict[Any, Any]) -> dict[Any, Any]:
    """The config with LiteLLM-style model names read (routing.model_names)."""
    deployments = data.get("deployments")
    if not isinstance(deployments, list):
        return data
    expanded = [
        expand_shorthand(entry, PROVIDERS) if isinstance(entry, dict) else entry
        for entry in deployments
    ]
    return {**data, "deployments": expanded}


def _check_breaker_overrides(parsed: _ConfigFile) -> list[ConfigProblem]:
    """A deployment's breaker overrides must make sense with the global settings they extend."""
    problems = []
    for index, deployment in enumerate(parsed.deployments):
        try:
            parsed.breaker.merged(deployment.breaker)
        except ValidationError as exc:
            for error in exc.errors():
                problems.append(
                    ConfigProblem(
                        f"deployments[{index}].breaker",
                        str(error["msg"]).removeprefix("Value error, "),
                        "change the override or the global breaker: section",
                    )
                )
    return problems


def _check_vector_dimensions(parsed: _ConfigFile) -> list[ConfigProblem]:
    """A policy or alias mixes only deployments whose vectors have one dimension."""
    dimensions = {d.id: d.vector_dimensions for d in parsed.deployments}
    groups = [(f"aliases.{name}", members) for name, members in parsed.aliases.items()]
    for name, policy in parsed.policies.items():
        expanded = [m for t in policy.targets for m in parsed.aliases.get(t, [t])]
        groups.append((f"policies.{name}.targets", expanded))
    return [
        ConfigProblem(
            path, problem, "give embedding models of different dimensions policies of their own"
        )
        for path, members in groups
        if (problem := mixed_dimensions(dimensions, members)) is not None
    ]


def _cross_check(data: dict[Any, Any]) -> Iterable[ConfigProblem]:
    """Checks that span entries. They read the raw data, so they report alongside schema errors
    (and skip whatever the schema check already complains about)."""
    seen: dict[str, int] = {}
    deployments = data.get("deployments")
    for index, deployment in enumerate(deployments if isinstance(deployments, list) else []):
        if not isinstance(deployment, dict):
            continue
        provider = deployment.get("provider")
        if isinstance(provider, str) and provider not in PROVIDERS:
            yield ConfigProblem(
                f"deployments[{index}].provider",
                f"unknown provider {_INPUT_REPR.repr(provider)}",
                _choose(provider, PROVIDERS),
            )
        model = deployment.get("model")
        if isinstance(provider, str) and isinstance(model, str):
            named = contradiction(provider, model, PROVIDERS)
            if named is not None:
                yield ConfigProblem(
                    f"deployments[{index}].model",
                    f"model {_INPUT_REPR.repr(model)} names provider {named!r}, but "
                    f"provider: is {provider!r}",
                    f"drop the '{model.partition('/')[0]}/' prefix, or set provider: {named}",
                )
        for field_name, providers in _DEPLOYMENT_FIELDS.items():
            if (
                deployment.get(field_name) is not None
                and isinstance(provider, str)
                and provider in PROVIDERS
                and provider not in providers
            ):
                yield ConfigProblem(
                    f"deployments[{index}].{field_name}",
                    f"{field_name}: applies to {' and '.join(providers)} deployments only",
                    f"remove {field_name}: from this {provider} deployment",
                )
        protocol = deployment.get("protocol")
        if isinstance(provider, str) and provider in PROVIDERS and protocol is not None:
            spec = PROVIDERS[provider]
            allowed = (spec.protocol, *spec.alt_protocols)
            if protocol not in allowed:
                yield ConfigProblem(
                    f"deployments[{index}].protocol",
                    f"{provider} does not speak {protocol!r}",
                    f"use one of: {', '.join(allowed)}, or leave protocol out",
                )
        deployment_id = deployment.get("id")
        if not isinstance(deployment_id, str):
            continue
        if deployment_id in seen:
            yield ConfigProblem(
                f"deployments[{index}].id",
                f"duplicate id {deployment_id!r} (also deployments[{seen[deployment_id]}])",
                "give every deployment its own id; ids key breakers and metrics",
            )
        seen.setdefault(deployment_id, index)
    aliases = data.get("aliases")
    aliases = aliases if isinstance(aliases, dict) else {}
    for name, members in aliases.items():
        if name in seen:
            yield ConfigProblem(
                f"aliases.{name}",
                f"alias {name!r} has the name of a deployment",
                "give the alias a name no deployment has",
            )
        for index, member in enumerate(members if isinstance(members, list) else []):
            if isinstance(member, str) and member not in seen:
                yield ConfigProblem(
                    f"aliases.{name}[{index}]",
                    f"unknown deployment {_INPUT_REPR.repr(member)}",
                    _choose(member, seen, what="a deployment id"),
                )
    # Only names the schema accepts: a key of another type (YAML reads ``1:`` as an int) is
    # reported by the schema check, and sorting it among strings for a hint would raise.
    known = [*seen, *(name for name in aliases if isinstance(name, str))]
    policies = data.get("policies")
    for name, policy in (policies if isinstance(policies, dict) else {}).items():
        targets = policy.get("targets") if isinstance(policy, dict) else None
        for index, target in enumerate(targets if isinstance(targets, list) else []):
            if isinstance(target, str) and target not in known:
                yield ConfigProblem(
                    f"policies.{name}.targets[{index}]",
                    f"unknown deployment or alias {_INPUT_REPR.repr(target)}",
                    _choose(target, known, what="a deployment id or alias"),
                )


def _choose(value: str, known: Iterable[str], *, what: str = "one of") -> str:
    names = sorted(known)
    close = difflib.get_close_matches(value, names, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    prefix = "use one of" if what == "one of" else f"use {what} from"
    return f"{hint}{prefix}: {', '.join(names)}"


_FIELD_HINTS = {
    "deployments": sorted(DeploymentConfig.model_fields),
    "policies": sorted(RoutingPolicy.model_fields),
    "breaker": sorted(BreakerSettings.model_fields),
    "health": sorted(HealthSettings.model_fields),
    "": sorted(_ConfigFile.model_fields),
}


#: Keys people look for on a policy that live on the breaker (one per route, fleet-wide).
_BREAKER_NOT_POLICY = {"failback", "close_after"}


def _describe(exc: ValidationError) -> Iterable[ConfigProblem]:
    """One problem per key path, in plain words: a union's branches (``api_key_env``: a name
    or a list of names) are pydantic's business, not the reader's."""
    said: set[str] = set()
    for problem in _problems_of(exc):
        if problem.path not in said:
            said.add(problem.path)
            yield problem


def _problems_of(exc: ValidationError) -> Iterable[ConfigProblem]:
    for error in exc.errors():
        location = [part for part in error["loc"] if part != "__root__"]
        path = _key_path(location)
        if _KEY_ENV_FIELD in location:
            key_env = _describe_key_env(error, location)
            if key_env is not None:
                yield key_env
            continue
        if _STORED_KEY_FIELD in location:
            stored = _describe_stored_key(error, location)
            if stored is not None:
                yield stored
            continue
        if error["type"] == "extra_forbidden":
            section = str(location[0]) if len(location) > 1 else ""
            allowed = _FIELD_HINTS.get(section, [])
            key = str(location[-1])
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            if section == "policies" and key in _BREAKER_NOT_POLICY:
                yield ConfigProblem(
                    path,
                    f"{key!r} is a breaker setting, not a policy's",
                    "move it to breaker: (all deployments) or to a deployment's breaker:; a "
                    "route's breaker is shared by every policy that uses it",
                )
                continue
            yield ConfigProblem(
                path,
                f"unknown key {key!r}",
                f"{hint}remove it; allowed keys here: {', '.join(allowed)}",
            )
        elif _names_a_key(error):
            key = error.get("input")
            where = location[:-2] if location[-1] == _KEY else location[:-1]
            yield ConfigProblem(
                _key_path(where),
                f"the key {_INPUT_REPR.repr(key)} is not a string ({type(key).__name__})",
                "quote the name ('1':): YAML reads 1, true, null and [a, b] unquoted as a "
                "number, a boolean, nothing and a list",
            )
        elif error["type"] == "missing":
            yield ConfigProblem(path, "required key is missing", "add it")
        elif error["type"] == "string_pattern_mismatch":
            yield ConfigProblem(
                path,
                f"{_PATTERN_WORDS.get(str(location[-1]), _IDENTIFIER_WORDS)}; "
                f"got {_shown_input(error)}",
                "see the config example in README.md",
            )
        else:
            yield ConfigProblem(
                path,
                f"{error['msg']} (got {_shown_input(error)})",
                "see the config example in README.md",
            )


#: The field that takes a variable's name or a list of them (a key pool): a union.
_KEY_ENV_FIELD = "api_key_env"

#: What a pattern a field must match says, in words (others are identifiers).
_PATTERN_WORDS = {"base_url": "must be a URL starting http:// or https://, without spaces"}
_IDENTIFIER_WORDS = "may hold only letters, digits and _ . : @ / + - (1 to 200 of them)"


def _describe_key_env(error: ErrorDetails, location: list[int | str]) -> ConfigProblem | None:
    """``api_key_env``'s error, from the branch of its union the value took (None: the other
    branch's, which says nothing more). Its value is the one most often a pasted key, so it is
    shown only by its shape (``_shown_input``)."""
    at = location.index(_KEY_ENV_FIELD)
    branch = location[at + 1] if len(location) > at + 1 else None
    entry = location[at + 2 :]
    value = error.get("input")
    pool_branch = isinstance(branch, str) and branch.startswith("list[")
    fix = (
        "put the key in the environment (or .env) under a name, say OPENAI_API_KEY_2, and "
        "write that name here"
    )
    if pool_branch and entry:  # an entry of a list
        where = _key_path([*location[: at + 1], *entry])
    elif isinstance(value, str) and not pool_branch:
        where = _key_path(location[: at + 1])
    elif isinstance(value, str | list):  # the other branch's complaint about the same value
        return None
    else:
        return ConfigProblem(
            _key_path(location[: at + 1]),
            "must be the name of an environment variable, or a list of names; got "
            f"{type(value).__name__}",
            fix,
        )
    if not isinstance(value, str):
        return ConfigProblem(
            where, f"must be the name of an environment variable; got {type(value).__name__}", fix
        )
    return ConfigProblem(
        where,
        "must be the NAME of an environment variable (letters, digits, _), not a key; got "
        f"{_shown_input(error)}",
        fix,
    )


#: The field that takes ``store:NAME`` or a list of them: a union, like ``api_key_env``.
_STORED_KEY_FIELD = "api_key"


def _describe_stored_key(error: ErrorDetails, location: list[int | str]) -> ConfigProblem | None:
    """``api_key``'s error, once per entry (None: the other branch of its union's complaint).
    The value is shown by its shape only: it is where a pasted key lands."""
    at = location.index(_STORED_KEY_FIELD)
    branch = location[at + 1] if len(location) > at + 1 else None
    entry = location[at + 2 :]
    value = error.get("input")
    pool_branch = isinstance(branch, str) and branch.startswith("list[")
    if pool_branch and entry:
        where = _key_path([*location[: at + 1], *entry])
    elif isinstance(value, str) and not pool_branch:
        where = _key_path(location[: at + 1])
    elif isinstance(value, str | list):
        return None
    else:
        where = _key_path(location[: at + 1])
    shown = (
        f"a string of {len(value)} characters starting {value[:3]!r}"
        if isinstance(value, str)
        else type(value).__name__
    )
    return ConfigProblem(
        where,
        f"must be store:NAME, a key of the key store (or a list of them); got {shown}",
        "store the key with `turnout keys set NAME` (it reads the value from stdin) and write "
        "store:NAME here; never the key itself",
    )


def _shown_input(error: Any) -> str:
    """What an error shows of the value it refuses. A string that fails a pattern is shown by
    its shape only: the usual one is an API key pasted where its variable's name belongs
    (``api_key_env: sk-...``), and an error message travels to terminals, logs and callers."""
    value = error.get("input")
    names_a_key = "api_key_env" in error["loc"]
    if isinstance(value, str) and (names_a_key or error["type"] == "string_pattern_mismatch"):
        return f"a string of {len(value)} characters starting {value[:3]!r}"
    return _INPUT_REPR.repr(value)


#: The last part of a pydantic error location that says the mapping key itself is wrong.
_KEY = "[key]"


def _names_a_key(error: ErrorDetails) -> bool:
    """Whether an error is about a mapping key rather than its value: a location of ints
    cannot tell the key ``1`` of a mapping from the second entry of a list."""
    location = error["loc"]
    return error["type"] == "invalid_key" or (bool(location) and location[-1] == _KEY)


class _ShapeOfLongStrings(reprlib.Repr):
    """reprlib's bounded repr, with every string of SHAPE_ONLY_CHARS or more shown by its shape:
    a key pasted anywhere in a config (``model: {key: sk-...}``) is such a string, and an error
    message travels to terminals, logs and callers."""

    def repr_str(self, x: str, level: int) -> str:
        if len(x) >= SHAPE_ONLY_CHARS:
            return f"<a string of {len(x)} characters starting {x[:3]!r}>"
        return super().repr_str(x, level)


#: Strings this long are shown by shape only: API keys are 32 to 100+ characters.
SHAPE_ONLY_CHARS = 24


def _bounded_repr() -> reprlib.Repr:
    """What an error shows of a wrong value: enough to recognise it, never the whole of a huge
    one (the repr of a YAML bomb is gigabytes), never a long string whole."""
    shown = _ShapeOfLongStrings()
    shown.maxlevel, shown.maxstring, shown.maxother = 2, 60, 60
    shown.maxlist = shown.maxdict = shown.maxtuple = shown.maxset = 4
    return shown


_INPUT_REPR = _bounded_repr()


def _key_path(location: list[int | str]) -> str:
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "(top level)"
