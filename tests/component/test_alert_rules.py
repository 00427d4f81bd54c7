"""Ativo's Prometheus alerting rules: promtool checks and unit-tests them, and every rule links a runbook page.

promtool comes with Prometheus (Debian: the ``prometheus`` package). Without it the promtool tests skip, saying so;
with ATIVO_REQUIRE_TOOLS=1 (CI) they fail instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS / "rules" / "ativo-alerts.yml"
RULE_TESTS = PROMETHEUS / "tests" / "ativo-alerts.test.yml"
CONFIG = PROMETHEUS / "prometheus.yml"
RUNBOOKS = ROOT / "docs" / "runbooks"
REQUIRE = os.environ.get("ATIVO_REQUIRE_TOOLS") == "1"

# Every rule and its runbook page (docs/runbooks/<slug>.md).
SLUGS = {
    "AtivoTaskFailed": "task-failed",
    "AtivoTaskRetrying": "task-retrying",
    "AtivoSchedulerHeartbeatMissing": "scheduler-down",
    "AtivoTriggererHeartbeatMissing": "triggerer-down",
    "AtivoBudgetHigh": "budget-high",
    "AtivoBudgetSpent": "budget-spent",
    "AtivoServingErrorRate": "serving-errors",
    "AtivoServingLatencyP99": "serving-latency",
    "AtivoDriftHeld": "drift-held",
    "AtivoErasureOverdue": "erasure-sla",
}
RUNBOOK_URL = re.compile(
    r"^\{\{ with \$externalLabels\.runbook_base \}\}\{\{ \. \}\}\{\{ else \}\}http://127\.0\.0\.1:8080/ativo/runbooks"
    r"\{\{ end \}\}/(?P<slug>[a-z0-9][a-z0-9-]*)$"
)


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        what = "promtool is not installed (apt-get install prometheus, or a Prometheus release's promtool on PATH)"
        if REQUIRE:
            pytest.fail(f"{what}; ATIVO_REQUIRE_TOOLS=1, so this fails instead of skipping")
        pytest.skip(what)
    return path


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    assert [g["name"] for g in doc["groups"]] == ["ativo"]
    return [r for g in doc["groups"] for r in g["rules"]]


# --- promtool ---------------------------------------------------------------------------------------------------


def test_promtool_checks_the_rules():
    result = run_promtool("check", "rules", str(RULES.relative_to(ROOT)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(SLUGS)} rules found" in result.stdout


def test_promtool_unit_tests_pass():
    # from the repository root, as documented: rule_files in the test file are relative to the test file
    result = run_promtool("test", "rules", str(RULE_TESTS.relative_to(ROOT)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_checks_the_compose_config():
    result = run_promtool("check", "config", str(CONFIG.relative_to(ROOT)))
    assert result.returncode == 0, result.stdout + result.stderr


# --- the rules' shape -------------------------------------------------------------------------------------------


def test_the_rules_are_the_documented_ones():
    assert [r["alert"] for r in rules()] == list(SLUGS)


@pytest.mark.parametrize("alert", list(SLUGS))
def test_each_rule_has_severity_summary_and_runbook(alert):
    rule = next(r for r in rules() if r["alert"] == alert)
    assert rule["labels"]["severity"] in ("page", "ticket")
    annotations = rule["annotations"]
    assert annotations.get("summary") and annotations.get("description")
    # the base comes from the deployment's external label runbook_base; the fallback is the embedded platform's
    m = RUNBOOK_URL.match(annotations.get("runbook_url", ""))
    assert m, f"{alert}: runbook_url is {annotations.get('runbook_url')!r}"
    assert m["slug"] == SLUGS[alert]


@pytest.mark.parametrize(
    ("alert", "label"),
    [
        ("AtivoTaskFailed", "dag_id"),
        ("AtivoTaskRetrying", "dag_id"),
        ("AtivoBudgetHigh", "team"),
        ("AtivoBudgetSpent", "team"),
        ("AtivoServingErrorRate", "model"),
        ("AtivoServingLatencyP99", "model"),
        ("AtivoDriftHeld", "model"),
        ("AtivoErasureOverdue", "model"),
    ],
)
def test_summaries_name_what_alerts(alert, label):
    rule = next(r for r in rules() if r["alert"] == alert)
    assert f"{{{{ $labels.{label} }}}}" in rule["annotations"]["summary"]


@pytest.mark.parametrize("slug", sorted(set(SLUGS.values())))
def test_each_runbook_page_exists(slug):
    assert (RUNBOOKS / f"{slug}.md").is_file(), f"docs/runbooks/{slug}.md is missing"


def test_prometheus_config_sets_the_runbook_base():
    config = yaml.safe_load(CONFIG.read_text())
    assert config["global"]["external_labels"]["runbook_base"] == "http://localhost:8080/ativo/runbooks"
    assert config["rule_files"] == ["rules/*.yml"]
    targets = {
        j["job_name"]: (j["static_configs"][0]["targets"], j.get("metrics_path", "/metrics"))
        for j in config["scrape_configs"]
    }
    assert targets == {
        "ativo-serve": (["ativo-serve:8000"], "/metrics"),
        "ativo-platform": (["airflow-apiserver:8080"], "/ativo/metrics"),
        "airflow-statsd": (["statsd-exporter:9102"], "/metrics"),
    }


# --- the unit-test file covers every rule both ways -------------------------------------------------------------


def test_every_rule_has_a_firing_and_a_quiet_case():
    cases: dict[str, dict[str, int]] = {alert: {"fires": 0, "quiet": 0} for alert in SLUGS}
    doc = yaml.safe_load(RULE_TESTS.read_text())
    assert doc["rule_files"] == ["../rules/ativo-alerts.yml"]
    for group in doc["tests"]:
        for case in group.get("alert_rule_test", []):
            alert = case["alertname"]
            assert alert in cases, f"test of an unknown rule {alert}"
            expected = case.get("exp_alerts") or []
            cases[alert]["fires" if expected else "quiet"] += 1
            for exp in expected:
                assert exp["exp_labels"]["severity"] in ("page", "ticket")
                url = exp["exp_annotations"]["runbook_url"]
                assert url == f"http://127.0.0.1:8080/ativo/runbooks/{SLUGS[alert]}", f"{alert}: {url}"
    missing = {alert: c for alert, c in cases.items() if not c["fires"] or not c["quiet"]}
    assert not missing, f"rules without a firing or a non-firing case: {missing}"
