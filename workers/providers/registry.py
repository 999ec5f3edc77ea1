"""Which adapter speaks which wire protocol, and building one for a deployment.

Adapters are named by import path so a worker only imports the protocols its config uses (the
Bedrock adapter brings botocore, the Vertex one google-auth)."""

from __future__ import annotations

import importlib
from typing import cast

from routing.catalog import Protocol
from routing.config import DeploymentConfig
from workers.providers.base import AdapterFactory, ProviderAdapter
from workers.settings import WorkerSettings

#: protocol -> "module:callable(deployment, settings) -> ProviderAdapter"
ADAPTERS: dict[Protocol, str] = {
    "openai": "workers.providers.openai_compat:OpenAICompatibleAdapter.from_settings",
    "azure": "workers.providers.azure:AzureOpenAIAdapter.from_settings",
    "anthropic": "workers.providers.anthropic:AnthropicAdapter.from_settings",
    "gemini": "workers.providers.gemini:GeminiAdapter.from_settings",
    "vertex": "workers.providers.gemini:VertexAdapter.from_settings",
    "bedrock": "workers.providers.bedrock:BedrockAdapter.from_settings",
    "cohere": "workers.providers.cohere:CohereAdapter.from_settings",
    "ollama": "workers.providers.ollama:OllamaAdapter.from_settings",
    "huggingface": "workers.providers.huggingface:HuggingFaceAdapter.from_settings",
    "ai21": "workers.providers.ai21:AI21Adapter.from_settings",
    "replicate": "workers.providers.replicate:ReplicateAdapter.from_settings",
}


def adapter_factory(protocol: Protocol) -> AdapterFactory:
    module_name, _, attribute = ADAPTERS[protocol].partition(":")
    target: object = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    return cast(AdapterFactory, target)


def build_adapter(deployment: DeploymentConfig, settings: WorkerSettings) -> ProviderAdapter:
    return adapter_factory(deployment.wire_protocol)(deployment, settings)
