"""Observability against the live platform: a real Prometheus scrapes the inference API, the api-server's
``/ativo/metrics`` and Airflow's StatsD (through the bridge and ``deploy/statsd/mapping.yml``).

Every query of every provisioned Grafana dashboard must be valid and return data; every alert rule must load and
evaluate cleanly, and the health alerts must stay quiet on a healthy platform.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ativo.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))


def queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, expr) of every target of every provisioned dashboard."""
    out = []
    for path in DASHBOARDS:
        doc = json.loads(path.read_text())
        panels = [p for row in doc["panels"] for p in (row.get("panels") or [row])]
        for panel in panels:
            for target in panel.get("targets", []):
                out.append((path.stem, panel.get("title", "?"), target["expr"]))
    return out


def test_the_dashboards_are_provisioned_for_every_area():
    names = {p.stem for p in DASHBOARDS}
    assert {"serving", "training-and-spend", "drift", "erasure"} <= names
    assert len(queries()) >= 4 * 4


def test_every_dashboard_query_is_valid_and_returns_data(live_platform):
    def scraped() -> bool:  # every job up, and long enough for the [5m] rates to have two samples
        up = live_platform.prom("up")["data"]["result"]
        return len(up) == 3 and all(r["value"][1] == "1" for r in up)

    wait_until(scraped, 120, 2, "Prometheus to scrape the inference API, the api-server and the StatsD bridge")
    empty, invalid = [], []

    def check() -> bool:
        empty.clear()
        invalid.clear()
        for board, title, expr in queries():
            answer = live_platform.prom(expr)
            if answer.get("status") != "success":
                invalid.append((board, title, expr, answer.get("error")))
            elif not answer["data"]["result"]:
                empty.append((board, title, expr))
        return not invalid and not empty

    try:  # a rate needs two scrapes; Airflow's gauges arrive on their own intervals
        wait_until(check, 90, 5, "every dashboard query to return data")
    except Exception:
        pytest.fail(f"invalid: {invalid}\nempty: {empty}")


def test_every_alert_rule_loads_and_the_health_alerts_stay_quiet(live_platform):
    rules_dir = ROOT / "deploy" / "prometheus" / "rules"
    import yaml

    declared = {
        r["alert"]
        for f in rules_dir.glob("*.yml")
        for g in yaml.safe_load(f.read_text())["groups"]
        for r in g["rules"]
        if "alert" in r
    }

    def evaluated() -> list[dict]:
        groups = live_platform.prom_api("/api/v1/rules")["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        return rules if rules and all(r.get("lastEvaluation", "").startswith("20") for r in rules) else []

    rules = wait_until(evaluated, 60, 2, "Prometheus to evaluate the alert rules")
    assert {r["name"] for r in rules} == declared
    assert [r["name"] for r in rules if r["health"] != "ok"] == []
    firing = {
        a["labels"]["alertname"]
        for a in live_platform.prom_api("/api/v1/alerts")["data"]["alerts"]
        if a["state"] == "firing"
    }
    quiet = {
        "AtivoSchedulerHeartbeatMissing",
        "AtivoTriggererHeartbeatMissing",
        "AtivoServingErrorRate",
        "AtivoBudgetSpent",
        "AtivoErasureOverdue",
    }
    assert not firing & quiet, firing
