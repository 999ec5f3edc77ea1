"""docker-compose.yml and the Dockerfile, checked without a Docker engine (none runs here)."""

from pathlib import Path

import yaml

from routing.config import load_config

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def test_the_four_services_exist():
    assert set(SERVICES) == {"redis", "worker", "beat", "flower"}


def test_redis_keeps_jobs_and_never_evicts_them():
    command = " ".join(SERVICES["redis"]["command"])
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command
    assert SERVICES["redis"]["volumes"]


def test_turnout_services_run_the_app_against_the_compose_redis():
    expected = {"worker": "worker", "beat": "beat", "flower": "flower"}
    for name, subcommand in expected.items():
        service = SERVICES[name]
        assert service["command"][:4] == ["celery", "-A", "workers.app", subcommand]
        assert service["environment"]["REDIS_URL"] == "redis://redis:6379/0"
        assert service["environment"]["TURNOUT_CONFIG"] == "/config/turnout.yaml"
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert service["build"] == "."


def test_every_service_has_a_healthcheck():
    for name, service in SERVICES.items():
        assert service["healthcheck"]["test"], name


def test_flower_requires_basic_auth_and_listens_on_loopback_only():
    command = " ".join(SERVICES["flower"]["command"])
    assert "--basic-auth=${FLOWER_BASIC_AUTH:?" in command
    assert all(port.startswith("127.0.0.1:") for port in SERVICES["flower"]["ports"])
    assert "ports" not in SERVICES["redis"], "Redis is not published"


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
