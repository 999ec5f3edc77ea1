"""docker-compose.yml and the Dockerfile, checked without a Docker engine (none runs here)."""

import re
import subprocess
from pathlib import Path

import yaml
from pydantic import AliasChoices

from producers.settings import ProducerSettings
from routing.config import load_config
from routing.host_allowlist import HostAllowList
from routing.settings import CoreSettings
from workers.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


CORE = {"redis", "worker", "beat", "flower", "api"}
MONITORING = {"exporter", "prometheus", "grafana"}


def test_the_core_services_exist_and_monitoring_is_a_profile():
    assert set(SERVICES) == CORE | MONITORING
    for name in CORE:
        assert "profiles" not in SERVICES[name], f"{name} runs on a plain `docker compose up`"
    for name in MONITORING:
        assert SERVICES[name]["profiles"] == ["monitoring"], name


def test_redis_keeps_jobs_and_never_evicts_them():
    command = " ".join(SERVICES["redis"]["command"])
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command
    assert SERVICES["redis"]["volumes"]


def test_turnout_services_run_the_app_against_the_compose_redis():
    expected = {"worker": "worker", "beat": "beat", "flower": "flower"}
    launcher = {"flower": ["python", "-m", "ops.guarded_flower"]}  # Flower with turnout's guards
    for name, subcommand in expected.items():
        service = SERVICES[name]
        program = launcher.get(name, ["celery"])
        assert service["command"][: len(program) + 3] == [*program, "-A", "workers.app", subcommand]
        assert service["environment"]["REDIS_URL"] == "redis://redis:6379/0"
        assert service["environment"]["TURNOUT_CONFIG"] == "/config/turnout.yaml"
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert service["build"] == "."


def test_every_service_has_a_healthcheck():
    for name, service in SERVICES.items():
        assert service["healthcheck"]["test"], name


def test_flower_requires_basic_auth_and_listens_on_loopback_only():
    flower = SERVICES["flower"]
    assert flower["environment"]["FLOWER_BASIC_AUTH"].startswith("${FLOWER_BASIC_AUTH:?")
    assert "FLOWER_BASIC_AUTH" not in " ".join(flower["command"]), "ps would show it"
    assert "FLOWER_BASIC_AUTH" in " ".join(flower["healthcheck"]["test"]), "/healthcheck wants it"
    # Prometheus scrapes it as flower:5555: that name is allowed besides loopback ones.
    assert flower["environment"]["TURNOUT_FLOWER_ALLOWED_HOSTS"].split(",")[0] == "flower"
    assert all(port.startswith("127.0.0.1:") for port in SERVICES["flower"]["ports"])
    assert "ports" not in SERVICES["redis"], "Redis is not published"


def test_the_exporter_serves_the_fleet_from_the_compose_redis_without_provider_keys():
    exporter, worker = SERVICES["exporter"], SERVICES["worker"]
    assert exporter["command"] == ["turnout", "exporter", "--port", "9464", "--host", "0.0.0.0"]
    assert (exporter["build"], exporter["image"]) == (worker["build"], worker["image"])
    assert exporter["volumes"] == worker["volumes"], "the same config file"
    for name in ("REDIS_URL", "TURNOUT_CONFIG"):
        assert exporter["environment"][name] == worker["environment"][name]
    assert exporter["environment"]["TURNOUT_NAMESPACE"] == "${TURNOUT_NAMESPACE:-turnout}"
    assert exporter["env_file"] == [], "it never calls a provider: no .env, no keys"
    assert exporter["depends_on"]["redis"]["condition"] == "service_healthy"


def test_the_http_front_needs_caller_tokens_and_holds_no_provider_key():
    api, worker = SERVICES["api"], SERVICES["worker"]
    assert api["command"] == ["turnout", "serve", "--host", "0.0.0.0", "--port", "8000"]
    assert api["env_file"] == [], "a producer: no .env, no provider keys"
    assert api["environment"]["TURNOUT_API_TOKENS"].startswith("${TURNOUT_API_TOKENS:?")
    assert api["volumes"] == worker["volumes"], "the same config file"
    assert api["ports"] == ["127.0.0.1:8000:8000"]
    assert "/healthz" in " ".join(api["healthcheck"]["test"])


def test_monitoring_ports_are_on_loopback_and_match_the_scrape_config():
    expected = {"exporter": "9464", "prometheus": "9090", "grafana": "3000"}
    for name, port in expected.items():
        assert SERVICES[name]["ports"] == [f"127.0.0.1:{port}:{port}"], name
    scrape = yaml.safe_load((ROOT / "ops/monitoring/prometheus.yml").read_text())
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in scrape["scrape_configs"]
    }
    assert targets["turnout"] == ["exporter:9464"]
    assert targets["flower"] == ["flower:5555"]


def test_prometheus_and_grafana_mount_the_shipped_files():
    for name in ("prometheus", "grafana"):
        for volume in SERVICES[name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which is missing"
                assert volume.endswith(":ro"), volume
    assert (
        "./ops/monitoring/prometheus.yml:/etc/prometheus/prometheus.yml:ro"
        in (SERVICES["prometheus"]["volumes"])
    )
    assert SERVICES["grafana"]["depends_on"] == ["prometheus"]
    assert SERVICES["prometheus"]["depends_on"] == ["exporter"]


def test_prometheus_gets_flowers_credentials_as_files(tmp_path):
    """The entrypoint's shell, run here with sh: the first user:password pair, split."""
    entrypoint = SERVICES["prometheus"]["entrypoint"]
    assert entrypoint[:2] == ["/bin/sh", "-c"]
    script = (
        entrypoint[2]
        .replace("$$", "$")  # compose's escape
        .replace("/tmp/flower", str(tmp_path / "flower"))
        .replace("/bin/prometheus", "echo")
    )
    env = {"PATH": "/usr/bin:/bin", "FLOWER_BASIC_AUTH": "ops:s3cr:et,other:pw"}
    done = subprocess.run(
        ["sh", "-c", script, "prometheus", "--config.file=x"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "--config.file=x", "Prometheus gets the command's arguments"
    assert (tmp_path / "flower/username").read_text() == "ops"
    assert (tmp_path / "flower/password").read_text() == "s3cr:et"
    assert (tmp_path / "flower/password").stat().st_mode & 0o077 == 0, "only its owner reads it"
    scrape = yaml.safe_load((ROOT / "ops/monitoring/prometheus.yml").read_text())
    (flower,) = [job for job in scrape["scrape_configs"] if job["job_name"] == "flower"]
    assert flower["basic_auth"] == {
        "username_file": "/tmp/flower/username",
        "password_file": "/tmp/flower/password",
    }
    assert "FLOWER_BASIC_AUTH:?" in SERVICES["prometheus"]["environment"]["FLOWER_BASIC_AUTH"]


def test_the_worker_is_given_time_to_finish_its_jobs_on_stop():
    grace = SERVICES["worker"]["stop_grace_period"]
    assert int(grace.rstrip("s")) > 30


def test_the_image_installs_the_four_packages_and_drops_root():
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("producers", "routing", "workers", "ops"):
        assert f"COPY {package} {package}" in dockerfile
    assert "RUN pip install ." in dockerfile
    assert "USER turnout" in dockerfile


def test_the_mounted_example_config_is_valid():
    config = load_config(ROOT / "turnout.example.yaml")
    assert {"default", "high_quality", "fast_cheap", "creative"} <= set(config.policies)
    assert config.expand(config.policies["high_quality"].targets) == [
        "claude-sonnet",
        "gpt-4o",
        "gemini-pro",
        "local-llama",
    ], "the alias expands in place"
    assert config.policies["fast_cheap"].strategy == "cheapest"
    assert config.deployment("gpt-4o").key_envs == ["OPENAI_API_KEY", "OPENAI_API_KEY_2"]


# --- who gets which variable ----------------------------------------------------------------

#: Services that never call a provider (beat only sends tasks; workers run them).
NOT_WORKERS = ("beat", "flower", "api", "exporter")
PROVIDER_VARIABLES = {
    str(field.validation_alias.choices[0])
    for name, field in WorkerSettings.model_fields.items()
    if name not in CoreSettings.model_fields and isinstance(field.validation_alias, AliasChoices)
}
INTERPOLATION = re.compile(r"\$\{(\w+)(?::?[-?][^}]*)?\}")


def resolved_with_nothing_set(value: str) -> str:
    """A compose value as compose fills it from an .env that sets nothing (defaults apply)."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


def test_no_provider_key_reaches_a_service_that_is_not_a_worker():
    assert {"OPENAI_API_KEY", "ANTHROPIC_API_KEY", "AWS_SECRET_ACCESS_KEY"} <= PROVIDER_VARIABLES
    for name in NOT_WORKERS:
        service = SERVICES[name]
        assert service["env_file"] == [], f"{name} would get all of .env, provider keys too"
        environment = service["environment"]
        named = set(environment) | {
            match for value in environment.values() for match in INTERPOLATION.findall(str(value))
        }
        assert not named & PROVIDER_VARIABLES, (name, named & PROVIDER_VARIABLES)
    assert SERVICES["worker"]["env_file"] == [{"path": ".env", "required": False}]


def test_every_core_setting_reaches_every_turnout_service_and_blank_is_its_default(
    monkeypatch, tmp_path
):
    """A setting in .env (TURNOUT_LEASE_S, ...) must reach beat, Flower, api and exporter as it
    reaches workers, or they would disagree about the queue; unset, compose passes it blank,
    which the settings read as their default."""
    monkeypatch.chdir(tmp_path)  # no stray .env
    core = {str(field.validation_alias) for field in CoreSettings.model_fields.values()}
    for name in NOT_WORKERS:
        environment = SERVICES[name]["environment"]
        assert core <= set(environment), (name, core - set(environment))
        with monkeypatch.context() as env:
            for key, value in environment.items():
                resolved = resolved_with_nothing_set(str(value))
                if "${" not in resolved:  # required ones (:?) aside
                    env.setenv(key, resolved)
            settings = ProducerSettings() if name == "api" else CoreSettings()
        assert settings.redis_url == "redis://redis:6379/0", name
        assert settings.namespace == "turnout", name
        assert settings.lease_s == CoreSettings.model_fields["lease_s"].default, name
        assert settings.task_events is False, name  # on while Flower asks


def test_the_api_answers_its_compose_name_and_loopback():
    environment = SERVICES["api"]["environment"]
    allowed = resolved_with_nothing_set(environment["TURNOUT_SERVE_ALLOWED_HOSTS"])
    hosts = HostAllowList.for_server("0.0.0.0", allowed)
    assert hosts.allows("api:8000"), "other containers"
    assert hosts.allows("127.0.0.1:8000"), "the published port"
    assert hosts.allows("localhost:8000")
    assert not hosts.allows("rebound.example:8000")
