"""The alerting rules shipped beside the dashboard read only what the exporter serves."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from ops.exporter import FAMILIES

MONITORING = Path(__file__).parents[2] / "ops" / "monitoring"
PROMQL_WORDS = {"sum", "max", "rate", "delta", "by", "and", "on"}


def _rules():
    groups = yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_every_alert_reads_only_metrics_and_labels_the_exporter_serves():
    by_sample = {sample: f for f in FAMILIES.values() for sample in f.sample_names}
    for rule in _rules():
        expr = rule["expr"]
        bare = re.sub(r'"[^"]*"', '""', expr)  # label values are not names
        bare = re.sub(r"\[[^\]]*\]", "", bare)  # nor are range selectors
        selectors = re.sub(r"\b(?:by|without|on)\s*\([^)]*\)", " ", bare)  # label lists
        selectors = re.sub(r"\{[^}]*\}", " ", selectors)  # and matchers are labels, not metrics
        names = set(re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b", selectors)) - set(
            re.findall(r"\b([a-z_]+)\s*\(", selectors)
        )
        metrics = {n for n in names if n.startswith("turnout_")}
        assert metrics, f"{rule['alert']}: {expr} reads no turnout metric"
        assert metrics <= set(by_sample), f"{rule['alert']} reads {metrics - set(by_sample)}"
        others = names - metrics - PROMQL_WORDS
        assert not others, f"{rule['alert']}: {expr} reads {others}, not the exporter's"
        allowed = {label for n in metrics for label in by_sample[n].labels}
        used = set()
        for group in re.findall(r"\b(?:by|without|on)\s*\(([^)]*)\)", bare):
            used |= {label.strip() for label in group.split(",") if label.strip()}
        for matchers in re.findall(r"\{([^}]*)\}", bare):
            used |= set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", matchers))
        assert used <= allowed, f"{rule['alert']}: {expr} uses labels {used - allowed}"
        words = set(re.findall(r"\b([a-z_]+)\s*\(", bare))
        assert words <= PROMQL_WORDS, f"{rule['alert']}: unexpected functions {words}"
        assert rule["for"], f"{rule['alert']} fires only when the condition lasts"
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]


def test_the_four_conditions_the_operators_asked_for_are_covered():
    alerts = {rule["alert"] for rule in _rules()}
    assert {
        "TurnoutBreakerOpenTooLong",
        "TurnoutBacklogGrowing",
        "TurnoutProviderErrorRate",
        "TurnoutNoWorkerTakingJobs",
    } <= alerts


def test_prometheus_loads_the_rules_and_compose_mounts_them_beside_its_config():
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]  # relative to /etc/prometheus/prometheus.yml
    compose = yaml.safe_load((MONITORING.parents[1] / "docker-compose.yml").read_text())
    mounts = compose["services"]["prometheus"]["volumes"]
    assert "./ops/monitoring/alerts.yml:/etc/prometheus/alerts.yml:ro" in mounts


def test_no_worker_online_is_read_from_the_workers_presence_not_guessed_from_the_queue():
    (rule,) = [r for r in _rules() if r["alert"] == "TurnoutNoWorkerTakingJobs"]
    assert rule["expr"].strip() == "turnout_workers_online == 0"
    assert rule["labels"]["severity"] == "critical"
