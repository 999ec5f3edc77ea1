"""Building each deployment's adapter from its config and the worker's credentials."""

from __future__ import annotations

from typing import Protocol

from pydantic import SecretStr

from routing.catalog import resolve_base_url
from routing.config import DeploymentConfig
from routing.models import CompletionRequest, ProviderCompletion
from workers.http import HttpCall, HttpReply
from workers.providers.openai_compat import OpenAICompatibleAdapter
from workers.settings import Settings


class ProviderAdapter(Protocol):
    deployment: DeploymentConfig

    def build_call(self, request: CompletionRequest) -> HttpCall: ...

    def parse_reply(self, reply: HttpReply) -> ProviderCompletion: ...


def build_adapter(deployment: DeploymentConfig, settings: Settings) -> ProviderAdapter:
    spec = deployment.spec
    key_env = deployment.key_env
    key = settings.value_of(key_env) if key_env else None
    base_url = resolve_base_url(
        spec,
        deployment.base_url,
        settings.value_of(spec.base_url_env) if spec.base_url_env else None,
    )
    headers = {
        header: value
        for header, env in spec.header_envs.items()
        if (value := settings.value_of(env)) is not None
    }
    # One protocol so far (spec.protocol == "openai"); the next issue adds the others here.
    return OpenAICompatibleAdapter(
        deployment,
        base_url=base_url,
        api_key=SecretStr(key) if key else None,
        extra_headers=headers,
    )
