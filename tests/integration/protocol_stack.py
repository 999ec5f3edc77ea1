"""One deployment per wire protocol, each on its simulator: the config and the worker's
environment that the credential tests (canaries, echoed keys) share."""

from __future__ import annotations

import os
from pathlib import Path

from tests.integration.harness import FAST_DELIVERY_ENV

#: Each protocol's model, and the path under its simulator's URL that its base_url takes.
MODELS = {
    "openai": ("gpt-4o-mini", "/v1"),
    "azure": ("my-deployment", ""),
    "anthropic": ("claude-sonnet-4-5", ""),
    "gemini": ("gemini-2.5-flash", "/v1beta"),
    "bedrock": ("anthropic.claude-3-haiku-20240307-v1:0", ""),
    "cohere": ("command-a-03-2025", ""),
    "ollama": ("llama3.2", ""),
    "vertex": ("gemini-2.5-flash", ""),
}


def write_protocol_config(path: Path, urls: dict[str, str], *, suffix: str) -> list[str]:
    """A config with one deployment ``<protocol>-<suffix>`` per simulator in ``urls`` (in that
    order) and a ``default`` policy trying each once within 8 s; returns the deployment ids."""
    lines = ["deployments:"]
    ids = []
    for provider, url in urls.items():
        model, path_part = MODELS[provider]
        ids.append(f"{provider}-{suffix}")
        lines += [
            f"  - id: {provider}-{suffix}",
            f"    provider: {provider}",
            f"    model: {model}",
            f"    base_url: {url}{path_part}",
        ]
    lines += [
        "policies:",
        "  default:",
        "    retries_per_target: 0",
        "    deadline_s: 8",
        "    targets: [" + ", ".join(ids) + "]",
    ]
    path.write_text("\n".join(lines) + "\n")
    return ids


def protocol_env(
    redis_url: str,
    namespace: str,
    config: Path,
    urls: dict[str, str],
    service_account_file: Path,
    credentials: dict[str, str],
) -> dict[str, str]:
    """The worker's environment: the delivery settings tests use, the credentials given, and
    what Azure, Ollama, Bedrock and Vertex need besides a key."""
    return {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH")},
        **FAST_DELIVERY_ENV,
        **credentials,
        "REDIS_URL": redis_url,
        "TURNOUT_NAMESPACE": namespace,
        "TURNOUT_CONFIG": str(config),
        "AZURE_BASE_URL": urls.get("azure", ""),
        "OLLAMA_BASE_URL": urls.get("ollama", ""),
        "AWS_DEFAULT_REGION": "us-east-1",
        "GOOGLE_CLOUD_PROJECT": "canary-project",
        "GOOGLE_CLOUD_LOCATION": "us-central1",
        "GOOGLE_APPLICATION_CREDENTIALS": str(service_account_file),
    }
