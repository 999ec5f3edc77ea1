""".env.example lists every variable turnout reads, once, so a copy of it is the whole menu."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from producers.settings import ProducerSettings
from routing.catalog import PROVIDERS
from routing.settings import CoreSettings
from workers.settings import WorkerSettings

LISTED = re.findall(
    r"^([A-Z][A-Z0-9_]*)=",
    (Path(__file__).parent.parent / ".env.example").read_text(),
    flags=re.MULTILINE,
)


def variables_of(settings: type[BaseSettings]) -> set[str]:
    names: set[str] = set()
    for field in settings.model_fields.values():
        alias = field.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
        names.update(str(c).upper() for c in choices if isinstance(c, str))
    return names


def test_every_settings_variable_is_listed():
    read = set().union(*map(variables_of, (CoreSettings, WorkerSettings, ProducerSettings)))
    assert sorted(read - set(LISTED)) == []


def test_every_provider_variable_is_listed():
    named = {env for spec in PROVIDERS.values() for env in spec.enable_envs}
    named |= {spec.key_env for spec in PROVIDERS.values() if spec.key_env}
    assert sorted(named - set(LISTED)) == []


def test_each_variable_is_listed_once():
    assert sorted({n for n in LISTED if LISTED.count(n) > 1}) == []
