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
    "huggingface": "ops.simulator.huggingface_sim:HuggingFaceSimulator",
    "tgi": "ops.simulator.huggingface_sim:TGISimulator",
    "ai21": "ops.simulator.ai21_sim:AI21Simulator",
    "replicate": "ops.simulator.replicate_sim:ReplicateSimulator",
    "oobabooga": "ops.simulator.oobabooga_sim:OobaboogaSimulator",
}


def simulator_class(protocol: str) -> type[ProviderSimulator]:
    module_name, _, name = SIMULATORS[protocol].partition(":")
    return cast(type[ProviderSimulator], getattr(importlib.import_module(module_name), name))
