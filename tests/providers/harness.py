"""Running a provider adapter against its simulator over real HTTP on 127.0.0.1.

Shared by the per-protocol wire tests (tests/providers) and the SDK conformance tests
(tests/conformance). WorkerSettings come only from what a test passes: never from this process's
environment or a .env file, so a developer's real keys cannot leak into a test.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from ops.simulator.base import ProviderSimulator
from ops.simulator.server import ServerThread
from routing.config import DeploymentConfig
from routing.models import CompletionRequest, ProviderCompletion
from workers.http import HttpcoreTransport
from workers.providers.base import ProviderAdapter
from workers.providers.registry import build_adapter
from workers.settings import WorkerSettings

TRANSPORT = HttpcoreTransport(connect_timeout_s=2.0)


class IsolatedSettings(WorkerSettings):
    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def settings(**env: str) -> WorkerSettings:
    """WorkerSettings from exactly these variables, e.g. ``settings(ANTHROPIC_API_KEY="...")``."""
    return IsolatedSettings.model_validate(env)


@contextmanager
def serving(simulator: ProviderSimulator) -> Iterator[ServerThread]:
    with ServerThread(simulator) as server:
        yield server


def control(server: ServerThread, path: str, payload: dict[str, Any] | None = None) -> Any:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(
        f"{server.url}/_sim/{path}", data=data, method="GET" if data is None else "POST"
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def set_faults(server: ServerThread, **faults: Any) -> None:
    control(server, "faults", faults)


def recent(server: ServerThread) -> list[dict[str, Any]]:
    """The requests the simulator recorded (credential headers as '<scheme> [hidden]')."""
    recorded: list[dict[str, Any]] = control(server, "state")["stats"]["recent"]
    return recorded


def adapter_for(
    provider: str, model: str, env: WorkerSettings, *, base_url: str | None = None, **fields: Any
) -> ProviderAdapter:
    deployment = DeploymentConfig(
        id=f"{provider}-test", provider=provider, model=model, base_url=base_url, **fields
    )
    return build_adapter(deployment, env)


def complete(
    adapter: ProviderAdapter, request: CompletionRequest, timeout_s: float = 5.0
) -> ProviderCompletion:
    """Send the adapter's call and parse the reply: a completion, or a ProviderError raised."""
    return adapter.parse_reply(TRANSPORT.send(adapter.build_call(request), timeout_s=timeout_s))


def probe(adapter: ProviderAdapter, timeout_s: float = 5.0) -> None:
    adapter.read_probe(TRANSPORT.send(adapter.build_probe(), timeout_s=timeout_s))


@dataclass(frozen=True)
class ServiceAccountKey:
    """A Google service-account key made on the spot, for the real google-auth flow against a
    simulator's token endpoint."""

    key_id: str
    private_pem: str
    public_pem: str

    @classmethod
    def generate(cls, key_id: str = "kid-1") -> ServiceAccountKey:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        public = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return cls(key_id, private.decode(), public.decode())

    def write(
        self, path: Path, token_uri: str, *, project: str = "turnout-test", **extra: str
    ) -> Path:
        """A service-account key file as the Cloud console downloads it."""
        info = {
            "type": "service_account",
            "project_id": project,
            "private_key_id": self.key_id,
            "private_key": self.private_pem,
            "client_email": f"turnout@{project}.iam.gserviceaccount.com",
            "client_id": "1234567890",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
            **extra,
        }
        path.write_text(json.dumps(info))
        return path
