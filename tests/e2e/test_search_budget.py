"""The search within a budget, through Airflow's task runner (dag.test): exactly what the budget covers runs.

dag.test() runs the mapped trials one after another and ignores pools; the pool limit is shown by the real
scheduler in tests/integration/test_pool_limit.py.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TEAM = "search-team"
PRICE_PER_S = 0.01  # cpu at 36 USD/hour, so the figures read well


@pytest.fixture
def oncall(webhook, monkeypatch):
    url, received = webhook
    monkeypatch.setenv("AIRFLOW_CONN_ATIVO_ONCALL", json.dumps({"conn_type": "http", "extra": {"webhook_url": url}}))
    return received


@pytest.fixture
def search(airflow_db, settings, reference_dir, tmp_path, monkeypatch):
    """A spec whose trials all cost about the same (no pruning, no early stopping), with two days of data."""
    from airflow.dag_processing.dagbag import DagBag

    from ativo.compute.budget import Ledger
    from ativo.data.etl import run_interval
    from ativo.data.landing import simulate
    from ativo.spec import load_spec
    from ativo.store.db import get_engine
    from ativo.store.objects import open_store

    doc = yaml.safe_load((ROOT / "include" / "specs" / "adult_income.yaml").read_text())
    # a few seconds per trial, so that the task runner's fixed tail (XCom, state) stays well under 1 % of a task
    doc["model"].update(num_boost_round=8000, early_stopping_rounds=None)
    doc["model"]["search"].update(pruning=False, space={"eta": {"type": "float", "low": 0.1, "high": 0.12}})
    doc["compute"].update(team=TEAM, execution_timeout_minutes=10)
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "adult_income.yaml").write_text(yaml.safe_dump(doc))
    monkeypatch.setenv("ATIVO_SPECS_DIR", str(specs))
    monkeypatch.setenv("ATIVO_PRICES", json.dumps({"cpu": PRICE_PER_S * 3600}))
    monkeypatch.setenv("ATIVO_BUDGET_POLL_S", "1")
    spec = load_spec(specs / "adult_income.yaml")
    start = dt.date(2026, 3, 1)
    simulate(spec, open_store(settings), reference_dir, start, 30)
    for day in (start, start + dt.timedelta(days=1)):
        run_interval(spec, settings, day.isoformat())
    # The search and its registration only: the gates that follow are the same tasks tests/e2e/test_etl_and_training.py
    # runs, and budgets do not govern them.
    dag = DagBag(dag_folder=str(ROOT / "dags")).dags["adult_income__train"].partial_subset(["register_best"])
    from ativo.config import load_settings

    current = load_settings()
    return dag, Ledger(get_engine(current.db_url), current.prices)


def trial_tis(run) -> list:
    return sorted((ti for ti in run.get_task_instances() if ti.task_id == "trials"), key=lambda ti: ti.map_index)


def test_budget_covering_k_trials_runs_k_of_16_and_refuses_the_rest_clearly(search, oncall, settings):
    from ativo.store.db import get_engine, spend_ledger
    from ativo.train.slots import table

    dag, ledger = search
    warm = dag.test(run_conf={"n_trials": 3})  # gives the trial a cost history
    assert str(warm.state) == "success"
    estimate = ledger.estimate("adult_income.trial", "cpu", 1, dt.timedelta(minutes=10))
    spent = ledger.status(TEAM)["settled_usd"]
    limit = round(spent + 2.5 * estimate, 6)  # room for two reservations (each twice the longest warm-up trial)
    ledger.set_budget(TEAM, limit_usd=limit)
    with ledger.engine.connect() as conn:
        first_id = conn.execute(spend_ledger.select().order_by(spend_ledger.c.id.desc())).first().id + 1

    run = dag.test(run_conf={"n_trials": 16})

    # the trial table: the trials the budget covered ran, then each worker's next trial was refused and ended it
    slots = table(get_engine(settings.db_url), f"adult_income/{run.run_id}")
    states = [r["state"] for r in slots]
    k = len(states) - states.count("refused")  # complete, or pruned (at its reservation, or by the pruner)
    # How many fit depends on what the admitted trials really cost (real seconds on a shared host), so the test
    # checks the admission rule itself, trial by trial, on the ledger's own figures.
    workers = trial_tis(run)
    assert len(workers) == 2  # the pool's two slots
    assert 1 <= k < 16 and states[k:] == ["refused"] * len(workers), states
    assert set(states[:k]) <= {"complete", "pruned"} and "complete" in states[:k], states
    assert all(f"budget '{TEAM}' is spent:" in r["reason"] for r in slots if r["state"] == "refused")
    with ledger.engine.connect() as conn:
        rows = (
            conn.execute(spend_ledger.select().where(spend_ledger.c.id >= first_id).order_by(spend_ledger.c.id))
            .mappings()
            .all()
        )
    assert {r["state"] for r in rows} == {"settled"} and len(rows) == k  # refused trials left nothing behind
    before = spent
    for r in rows:  # each admitted trial's estimate fitted in what was left when it asked
        assert before + r["estimate_usd"] <= limit + 1e-9, (before, r["estimate_usd"], limit)
        before += r["actual_usd"]
    # and the estimate every later trial asked with no longer fitted
    assert before + ledger.estimate("adult_income.trial", "cpu", 1, dt.timedelta(minutes=10)) > limit
    assert all(str(ti.state) == "failed" and ti.try_number == 1 for ti in workers)  # a refusal is not retried
    assert str(run.state) == "success"  # the best of the k trials was registered (or is, byte for byte, already)
    # each refusal paged on-call with the budget, spent, limit, estimate and reset date
    pages = [m["ativo"]["error"] for m in oncall if m["ativo"].get("task_id") == "trials"]
    assert len(pages) == len(workers)
    for page in pages:
        assert f"budget '{TEAM}' is spent:" in page and "USD this month" in page
        assert "this task reserves up to" in page and "or wait for" in page and f"ativo budget set {TEAM}" in page
    # the ledger charged exactly the trials that ran: the seconds each held its compute × price, and those seconds
    # lie within the task's own run (its start and end add task overhead, which is not charged)
    for r in rows:
        charged = min(r["seconds"] * PRICE_PER_S, r["estimate_usd"])  # never more than it reserved
        assert r["seconds"] > 0 and r["actual_usd"] == pytest.approx(charged, rel=1e-6)
    charged = sum(r["seconds"] for r in rows)
    durations = sum((ti.end_date - ti.start_date).total_seconds() for ti in workers)
    assert 0.5 * durations <= charged <= durations  # most of a trial's run is its compute; the rest is not charged
    status = ledger.status(TEAM)
    assert status["reserved_usd"] == 0
    # a trial is admitted only if its reservation fits, and is charged at most that: the limit is never passed
    assert status["settled_usd"] <= status["limit_usd"] + 1e-6
    # each threshold the spend crossed was reported to on-call, once
    budget_pages = [m["ativo"]["thresholds"] for m in oncall if m["ativo"].get("kind") == "budget"]
    crossed = [t for t in (50, 80, 100) if status["used_pct"] >= t]
    # (the warm-up's spend and the trials admitted take it past 50 %; how far past depends on the trials' seconds)
    assert sorted(t for ts in budget_pages for t in ts) == crossed and 50 in crossed


def test_defer_policy_waits_for_room_then_runs(search):
    dag, ledger = search
    ledger.set_budget(TEAM, limit_usd=0.0, policy="defer")  # no room at all

    def raise_limit() -> None:
        time.sleep(3)
        ledger.set_budget(TEAM, limit_usd=100.0, policy="defer")

    helper = threading.Thread(target=raise_limit)
    helper.start()
    started = time.monotonic()
    run = dag.test(run_conf={"n_trials": 1})
    helper.join()
    [ti] = trial_tis(run)
    assert str(ti.state) == "success" and str(run.state) == "success"
    assert time.monotonic() - started > 3  # it waited for the raise
    status = ledger.status(TEAM)
    assert status["settled_usd"] > 0 and status["reserved_usd"] == 0
