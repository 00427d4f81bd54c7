"""The Airflow plugin: the Prometheus endpoint the api-server mounts at /ativo/metrics."""

from __future__ import annotations

import datetime as dt
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_plugin():
    spec = importlib.util.spec_from_file_location("ativo_plugin", ROOT / "plugins" / "ativo_plugin.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_metrics_endpoint_serves_budgets_and_leases_from_the_platform_db(ativo_home):
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

    engine = get_engine(load_settings().db_url)
    ledger = Ledger(engine, {"cpu": 3.6})
    ledger.set_budget("risk", limit_usd=10)
    reservation = ledger.reserve(team="risk", spec="s", task_key="t", estimate_usd=0.5, resource="cpu",
                                 timeout=dt.timedelta(hours=1))  # fmt: skip
    LeaseManager(engine, devices=2, host="gpu-node-7").acquire("trial-9")
    with TestClient(api) as client:
        first = client.get("/ativo/metrics")
        ledger.settle(reservation, seconds=2000)  # 2.00 USD: read again at the next scrape
        second = client.get("/ativo/metrics")
    assert first.status_code == 200 and first.headers["content-type"].startswith("text/plain")
    assert 'ativo_budget_limit_usd{team="risk"} 10.0' in first.text
    assert '",team="risk"} 0.5' in first.text  # reserved while the task runs
    assert 'ativo_gpu_leases{host="gpu-node-7",state="active"} 1.0' in first.text
    assert '",team="risk"} 0.2' in second.text  # used ratio 2 / 10
