"""Which simulator speaks which wire protocol (named by import path, like the adapters)."""

from __future__ import annotations

import importlib
from typing import cast

from ops.simulator.base import ProviderSimulator

SIMULATORS: dict[str, str] = {
    "openai": "ops.simulator.openai_sim:OpenAISimulator",
    "azure": "ops.simulator.azure_sim:AzureSimulator",
    "anthropic": "ops.simulator.anthropic_sim:AnthropicSimulator",
    "gemini": "ops.simulator.gemini_sim:GeminiSimulator",
    "vertex": "ops.simulator.vertex_sim:VertexSimulator",
    "bedrock": "ops.simulator.bedrock_sim:BedrockSimulator",
    "cohere": "ops.simulator.cohere_sim:CohereSimulator",
    "ollama": "ops.simulator.ollama_sim:OllamaSimulator",
}


def simulator_class(protocol: str) -> type[ProviderSimulator]:
    module_name, _, name = SIMULATORS[protocol].partition(":")
    return cast(type[ProviderSimulator], getattr(importlib.import_module(module_name), name))
