"""Which providers this environment enables, and whether their credentials work.

``turnout providers`` lists every provider (enabled or not, what is missing, the key masked),
and every deployment or key-pool entry of the config whose variable is unset;
``turnout providers check`` sends each enabled provider's cheapest authenticated request
(models lists, a token count, key info, Bedrock's foundation-models list, the Hugging Face
Hub's whoami-v2, Replicate's account, AI21's file library) and says what is
wrong in words an operator can act on.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from routing.catalog import PROVIDERS, ProviderSpec
from routing.config import DeploymentConfig, TurnoutConfig
from routing.errors import ErrorClass, ProviderError
from workers.http import HttpTransport
from workers.providers.aws_credentials import missing_for_inventory
from workers.providers.base import deployment_base_url
from workers.providers.registry import build_adapter
from workers.providers.wrong_address import check_address, shown_url
from workers.redaction import Redactor
from workers.settings import ALIAS_OWNERS, WorkerSettings

#: A model to name in a probe that needs one (Vertex counts tokens for a model).
PROBE_MODELS = {"vertex": "gemini-2.5-flash", "gemini": "gemini-2.5-flash"}

ProbeStatus = Literal[
    "ok", "invalid_key", "no_permission", "unreachable", "wrong_region_or_version", "error"
]


def mask(secret: str | None) -> str | None:
    """At most the last four characters, and none of a short secret."""
    if not secret:
        return None
    return f"…{secret[-4:]}" if len(secret) >= 16 else "…"


@dataclass(frozen=True)
class ProviderStatus:
    name: str
    protocol: str
    enabled: bool
    missing: list[str]
    key: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def inventory(settings: WorkerSettings) -> list[ProviderStatus]:
    rows = []
    for spec in PROVIDERS.values():
        missing = [env for env in spec.enable_envs if not settings.is_set(env)]
        key = settings.value_of(spec.key_env) if spec.key_env else None
        if spec.name == "bedrock":
            missing = missing_for_inventory(settings.is_set)
            key = settings.value_of("AWS_BEARER_TOKEN_BEDROCK") or settings.value_of(
                "AWS_ACCESS_KEY_ID"
            )
        rows.append(ProviderStatus(spec.name, spec.protocol, not missing, missing, mask(key)))
    return rows


@dataclass(frozen=True)
class UnsetVariable:
    """A variable the config names (a deployment's key, a key pool's entry, or one its
    provider needs) that is unset here: the route it belongs to is out of rotation."""

    deployment: str
    provider: str
    #: where the config names it: deployments[1].api_key_env[0], or deployments[1] for a
    #: provider default
    path: str
    variable: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def unset_variables(config: TurnoutConfig, settings: WorkerSettings) -> list[UnsetVariable]:
    return [
        UnsetVariable(m.deployment.id, m.deployment.provider, m.path, m.env)
        for m in config.missing_variables(settings.is_set)
    ]


@dataclass(frozen=True)
class ProbeResult:
    provider: str
    status: ProbeStatus
    latency_ms: float
    detail: str
    hint: str
    #: Where a value came from when it was not our name: "AZURE_BASE_URL read from
    #: AZURE_API_BASE (LiteLLM's name)".
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_STATUS_BY_CLASS: dict[ErrorClass, ProbeStatus] = {
    ErrorClass.AUTH: "invalid_key",
    ErrorClass.PERMISSION: "no_permission",
    ErrorClass.CONNECTION: "unreachable",
    ErrorClass.TIMEOUT: "unreachable",
    ErrorClass.MODEL_NOT_FOUND: "wrong_region_or_version",
    ErrorClass.CONFIGURATION: "unreachable",
}


def probe_deployment(spec: ProviderSpec, config: TurnoutConfig | None) -> DeploymentConfig:
    """The provider's first deployment in the config, or a stand-in with its defaults."""
    for deployment in config.deployments.values() if config else ():
        if deployment.provider == spec.name:
            return deployment
    return DeploymentConfig(
        id=f"probe-{spec.name}", provider=spec.name, model=PROBE_MODELS.get(spec.name, "probe")
    )


def probe(
    spec: ProviderSpec,
    settings: WorkerSettings,
    transport: HttpTransport,
    *,
    config: TurnoutConfig | None = None,
    timeout_s: float = 10.0,
    redact: Redactor | None = None,
) -> ProbeResult:
    scrub = redact or Redactor()
    started = time.monotonic()
    deployment = probe_deployment(spec, config)
    try:
        adapter = build_adapter(deployment, settings)
        call = adapter.build_probe()
        reply = transport.send(call, timeout_s=timeout_s)
        check_address(call, reply)
        adapter.read_probe(reply)
    except ProviderError as exc:
        status = _STATUS_BY_CLASS.get(exc.error_class, "error")
        if exc.error_class is ErrorClass.BAD_REQUEST and spec.name in ("azure", "bedrock"):
            status = "wrong_region_or_version"  # an unknown api-version or region answers 400
        detail = scrub(exc.message)
    except Exception as exc:  # a credential that cannot even be loaded (a bad key file, say)
        status, detail = "error", scrub(f"{type(exc).__name__}: {exc}")
    else:
        status, detail = "ok", "credentials accepted"
    latency_ms = round((time.monotonic() - started) * 1000, 1)
    notes = alias_notes(spec, settings)
    return ProbeResult(
        spec.name, status, latency_ms, detail, hint(spec, settings, status, deployment), notes
    )


def alias_notes(spec: ProviderSpec, settings: WorkerSettings) -> list[str]:
    """One line per variable of ``spec`` whose value was read from another tool's name for it
    (workers.settings.ALIAS_OWNERS), so nobody looks for the wrong variable."""
    notes = []
    for env in spec.all_envs:
        source = settings.source_of(env)
        if source is not None and source != env:
            owner = ALIAS_OWNERS.get(source)
            notes.append(f"{env} read from {source}" + (f" ({owner})" if owner else ""))
    return notes


def check_enabled(
    settings: WorkerSettings,
    transport: HttpTransport,
    *,
    config: TurnoutConfig | None = None,
    timeout_s: float = 10.0,
    redact: Redactor | None = None,
) -> list[ProbeResult]:
    """Probe every enabled provider at once, each bounded by ``timeout_s``: those whose
    variables are set, and those a config deployment can run with what is set (an Azure
    deployment with ``auth: entra_id`` has no key; Bedrock's credentials may be a profile's)."""
    names = {row.name for row in inventory(settings) if row.enabled}
    for deployment in config.deployments.values() if config else ():
        if all(settings.is_set(env) for env in deployment.required_envs):
            names.add(deployment.provider)
    enabled = [spec for spec in PROVIDERS.values() if spec.name in names]
    if not enabled:
        return []
    with ThreadPoolExecutor(max_workers=len(enabled)) as pool:
        futures = [
            pool.submit(
                probe,
                spec,
                settings,
                transport,
                config=config,
                timeout_s=timeout_s,
                redact=redact,
            )
            for spec in enabled
        ]
        return [future.result() for future in futures]


def base_url_source(
    spec: ProviderSpec, settings: WorkerSettings, deployment: DeploymentConfig | None
) -> str:
    """Where the probed URL came from, truthfully: the deployment's ``base_url`` in the config,
    the provider's variable (only when it is set), or the provider's default."""
    if deployment is not None and deployment.base_url:
        return f"base_url of deployment {deployment.id} in the config"
    if spec.base_url_env and settings.value_of(spec.base_url_env):
        return f"set by {spec.base_url_env}"
    if spec.base_url_env:
        return f"the default; {spec.base_url_env} is not set"
    return "the default"


def hint(
    spec: ProviderSpec,
    settings: WorkerSettings,
    status: ProbeStatus,
    deployment: DeploymentConfig | None = None,
) -> str:
    """One line an operator can act on."""
    if status == "ok":
        return ""
    if status == "invalid_key":
        if spec.name == "bedrock":
            return (
                "check the credentials botocore found (AWS_PROFILE and its SSO login or role, "
                "or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN) or "
                "AWS_BEARER_TOKEN_BEDROCK: no stray whitespace, not expired, clock in sync"
            )
        if spec.name == "vertex":
            return (
                "check GOOGLE_APPLICATION_CREDENTIALS (a service-account file) or the "
                "application default credentials: not revoked, the right project"
            )
        return (
            f"check {spec.key_env}: no quotes or whitespace around it, not expired or revoked, "
            "from the right account"
        )
    if status == "no_permission":
        if spec.name == "bedrock":
            return (
                "the credentials work but lack bedrock:ListFoundationModels or model access in "
                "the deployment's region: grant them in IAM and the Bedrock console"
            )
        if spec.name == "vertex":
            return (
                "the credentials work but lack Vertex AI access in project "
                f"{settings.google_cloud_project}: grant roles/aiplatform.user, enable the API"
            )
        if spec.name == "huggingface":
            return (
                "the token works but may not call Inference Providers: give a fine-grained "
                'token the permission "Make calls to Inference Providers", or check the '
                "credits at https://huggingface.co/settings/billing"
            )
        if spec.name == "replicate":
            return (
                "the token works but may not run predictions: check the credit at "
                "https://replicate.com/account/billing"
            )
        return "the key works but may not use this API: check the account's access and billing"
    if status == "unreachable":
        where = base_url_source(spec, settings, deployment)
        url = (
            shown_url(deployment_base_url(deployment, settings))
            if deployment is not None
            else spec.default_base_url
        )
        return f"cannot reach the endpoint {url} ({where}): check the URL, proxy, firewall and DNS"
    if status == "wrong_region_or_version":
        if spec.name == "azure":
            return (
                f"check AZURE_API_VERSION ({settings.azure_api_version}) and AZURE_BASE_URL "
                "(https://<resource>.openai.azure.com)"
            )
        if spec.name == "bedrock":
            return (
                "check the region (the deployment's region:, else AWS_REGION, "
                "AWS_DEFAULT_REGION, the profile's): Bedrock or the model may not be offered there"
            )
        if spec.name == "vertex":
            return (
                "check the location (the deployment's location:, else GOOGLE_CLOUD_LOCATION "
                f"({settings.google_cloud_location or 'unset: global'})) and "
                f"GOOGLE_CLOUD_PROJECT ({settings.google_cloud_project})"
            )
        return "the endpoint answered 404: check the base URL and the model name"
    return "the provider answered unexpectedly; see the detail, and its status page"
