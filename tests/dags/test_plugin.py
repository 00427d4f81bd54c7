"""The Airflow plugin: the Prometheus endpoint the api-server mounts at /ativo/metrics."""

from __future__ import annotations

import datetime as dt
import importlib
import socket

import pytest

from tests.metrics_text import samples


def load_plugin():
    # what Airflow loads through the package's airflow.plugins entry point, as a new process does: a fresh copy, not
    # one whose app an earlier test in this worker already built
    return importlib.reload(importlib.import_module("ativo.airflow.plugin"))


def test_metrics_endpoint_serves_budgets_and_leases_from_the_platform_db(ativo_home, monkeypatch):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from ativo.compute.budget import Ledger
    from ativo.compute.leases import LeaseManager
    from ativo.config import load_settings
    from ativo.store.db import get_engine

    plugin = load_plugin()
    [entry] = plugin.AtivoPlugin.fastapi_apps
    assert entry["url_prefix"] == "/ativo" and entry["app"].app is None  # nothing built until the first scrape
    api = FastAPI()
    api.mount(entry["url_prefix"], entry["app"])  # what Airflow's api-server does with it

    monkeypatch.setenv("ATIVO_GPU_COUNT", "3")  # this host's GPUs, as the endpoint reads them
    engine = get_engine(load_settings().db_url)
    ledger = Ledger(engine, {"cpu": 3.6})
    ledger.set_budget("risk", limit_usd=10)
    reservation = ledger.reserve(
        team="risk", spec="s", task_key="t", estimate_usd=2.5, resource="cpu", timeout=dt.timedelta(hours=1)
    )
    LeaseManager(engine, devices=2, host="gpu-node-7").acquire("trial-9")
    with TestClient(api) as client:
        first = client.get("/ativo/metrics")
        ledger.settle(reservation, seconds=2000)  # 2.00 USD: read again at the next scrape
        second = client.get("/ativo/metrics")
    assert first.status_code == 200 and first.headers["content-type"].startswith("text/plain")
    team = frozenset({"team": "risk", "period": ledger.status("risk")["period"]}.items())
    fixed = {
        ("ativo_budget_limit_usd", frozenset({"team": "risk"}.items())): 10.0,
        ("ativo_gpu_devices", frozenset({"host": socket.gethostname()}.items())): 3.0,
        ("ativo_gpu_leases", frozenset({"host": "gpu-node-7", "state": "active"}.items())): 1.0,
    }

    def budget_and_leases(text: str) -> dict:
        return {
            k: v
            for k, v in samples(text).items()
            if k[0].startswith(("ativo_budget_", "ativo_gpu_")) and k[0] != "ativo_budget_alerts_sent"
        }

    assert budget_and_leases(first.text) == pytest.approx(
        {  # reserved while the task runs, nothing settled yet
            **fixed,
            ("ativo_budget_spent_usd", team): 0.0,
            ("ativo_budget_reserved_usd", team): 2.5,
            ("ativo_budget_used_ratio", team): 0.0,
        },
        rel=1e-9,
        abs=1e-12,
    )
    assert budget_and_leases(second.text) == pytest.approx(
        {  # read again at the next scrape: 2.00 USD settled of 10
            **fixed,
            ("ativo_budget_spent_usd", team): 2.0,
            ("ativo_budget_reserved_usd", team): 0.0,
            ("ativo_budget_used_ratio", team): 0.2,
        },
        rel=1e-9,
        abs=1e-12,
    )
    period = ledger.status("risk")["period"]
    spend = frozenset({"team": "risk", "spec": "s", "resource": "cpu", "period": period}.items())
    assert ("ativo_spend_usd", spend) not in samples(first.text)
    assert samples(second.text)[("ativo_spend_usd", spend)] == pytest.approx(2.0)
    for spec in ("adult_income", "compas_recidivism"):  # every shipped spec's erasure series, before any request
        model = frozenset({"model": spec}.items())
        assert samples(second.text)[("ativo_erasure_overdue_requests", model)] == 0
        assert samples(second.text)[("ativo_erasure_sla_seconds", model)] == 72 * 3600
