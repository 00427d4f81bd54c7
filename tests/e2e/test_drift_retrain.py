"""The loop closes: drifted traffic through the real inference API → the MONITOR DAG → a `<spec>.drift` event → a
training run on the drift trigger → a new challenger (the generated DAGs with dag.test(), a real `ativo serve`)."""

from __future__ import annotations

import datetime as dt
import json

from tests.e2e.test_etl_and_training import asset_events, run_etl, states
from tests.support.scenarios import cheap_gates

START = dt.date(2026, 3, 1)


def dag_runs(dag_id: str, run_id: str) -> list[dict]:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        runs = session.execute(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)).scalars()
        return [{"conf": r.conf, "note": r.note, "state": str(r.state)} for r in runs]


def quick(spec):
    """The reference spec, judging a single drifted window, with cheaper gates that a one-trial search passes (the
    gates' own bounds are tested elsewhere: here the question is whether the loop closes)."""
    spec = cheap_gates(spec)
    return spec.model_copy(update={"monitor": spec.monitor.model_copy(update={"sustain": 1})})


def test_drifted_traffic_is_detected_and_retrains_a_new_challenger(
    airflow_db, settings, spec, reference_dir, webhook, monkeypatch
):
    from mlflow import MlflowClient

    from ativo.airflow.dags.etl import build_etl_dag
    from ativo.airflow.dags.monitor import build_monitor_dag
    from ativo.airflow.dags.reconcile import build_reconcile_dag
    from ativo.airflow.dags.train import build_train_dag
    from ativo.data.landing import simulate
    from ativo.deploy.promotion import promote
    from ativo.monitor.decide import history
    from ativo.serve.traffic import parse_shift, replay
    from ativo.store.db import drift_episodes, get_engine
    from ativo.store.episodes import open_episodes
    from ativo.store.objects import open_store
    from tests.support.harness import start_server

    url, pages = webhook
    monkeypatch.setenv("AIRFLOW_CONN_ATIVO_ONCALL", json.dumps({"conn_type": "http", "extra": {"webhook_url": url}}))
    spec = quick(spec)
    simulate(spec, open_store(settings), reference_dir, START, 3)  # three days of ~16,000 real rows each
    etl, train, monitor = build_etl_dag(spec), build_train_dag(spec), build_monitor_dag(spec)
    assert str(run_etl(etl, START).state) == "success"
    first = train.test(run_conf={"n_trials": 1})
    assert str(first.state) == "success", states(first)
    client = MlflowClient(settings.mlflow_tracking_uri)
    name = spec.registered_model_name
    promote(spec, settings, "1", reason="the first version", actor="test")
    assert str(run_etl(etl, START + dt.timedelta(days=1)).state) == "success"  # new data lands: v0002, untrained

    server = start_server(settings, args=("--refresh-s", "0.2"))
    began = dt.datetime.now(dt.UTC)
    try:
        shifts = [parse_shift(spec, "age=+15"), parse_shift(spec, "hours_per_week=*1.3")]
        sent = replay(server.url, server.key, spec, reference_dir, rows=2000, labels=False, drift=shifts)
        assert sent["rows"] == 2000 and sent["drift"] == ["age=+15", "hours_per_week=*1.3"]
    finally:
        server.stop()  # a clean stop flushes the prediction log
    window = {"start": (began - dt.timedelta(minutes=1)).isoformat(), "end": dt.datetime.now(dt.UTC).isoformat()}

    watched = monitor.test(run_conf=window)
    assert str(watched.state) == "success", states(watched)
    assert states(watched) == {"judge_window": "success", "announce_drift": "success"}
    [run] = history(get_engine(settings.db_url), spec.name)
    assert run["decision"] == "emitted" and run["rows"] == 2000 and run["version"] == "1"
    assert any(r.startswith("age: PSI") for r in run["reasons"])
    assert any(r.startswith("hours_per_week: PSI") for r in run["reasons"])
    [event] = asset_events(f"x-ativo://drift/{spec.name}")
    assert event["episode"] == run["episode_id"] and event["version"] == "1" and event["report"] == run["report_uri"]
    told = [p["ativo"] for p in pages if p.get("ativo", {}).get("kind") == "drift_retraining"]
    assert told and told[0]["report"] == run["report_uri"]  # on-call is told, with the report
    mv = client.get_model_version(name, "1")
    report = client.download_artifacts(mv.run_id, run["report_uri"].split(f"{mv.run_id}/", 1)[1])
    assert (
        "age (drift)" in open(report, encoding="utf-8").read()
        and mv.tags["ativo.monitor_report_uri"] == run["report_uri"]
    )

    # were the event lost, the reconciler would start the retraining, with the episode in a real dict conf
    reconcile = build_reconcile_dag(spec).test()
    assert states(reconcile) == {"check": "success", "trigger_training": "success"}, states(reconcile)
    [queued] = dag_runs(train.dag_id, f"reconcile__drift-{run['episode_id']}")
    assert queued["conf"]["trigger"] == "drift" and queued["conf"]["episode"] == run["episode_id"]
    assert queued["note"].startswith(f"reconciler: drift episode {run['episode_id']}")

    retrained = train.test(run_conf={"trigger": "drift", "n_trials": 1})  # as the drift event (or reconciler) runs it
    assert str(retrained.state) == "success", states(retrained)
    new = client.get_model_version(name, "2")
    assert new.tags["ativo.dataset_version"] == f"{spec.name}-v0002"  # the latest data
    parent = client.get_run(client.get_run(new.run_id).data.tags.get("mlflow.parentRunId", new.run_id))
    assert parent.data.tags.get("ativo.trigger") == "drift", parent.data.tags
    assert f"drift episode(s) {run['episode_id']}" in parent.data.tags["ativo.trigger_reason"]
    assert str(client.get_registered_model(name).aliases.get("challenger")) == "2", new.tags
    engine = get_engine(settings.db_url)
    assert open_episodes(engine, spec.name) == []
    with engine.connect() as conn:
        [(outcome,)] = conn.execute(drift_episodes.select().with_only_columns(drift_episodes.c.outcome)).all()
    assert outcome == "retrained: version 2, challenger"
    again = train.test(run_conf={"trigger": "drift", "n_trials": 1})  # the same episode again: no second model
    assert states(again)["plan_search"] == "skipped"
    assert sorted(int(mv.version) for mv in client.search_model_versions(f"name='{name}'")) == [1, 2]

    # the drift goes on, past the cooldown, but the team's budget is spent: no retraining, and one page that says so
    from ativo.compute.budget import Ledger

    Ledger(engine, settings.prices).set_budget(spec.compute.team, limit_usd=0.000001)
    no_cooldown = spec.monitor.model_copy(update={"cooldown_hours": 0})
    broke = build_monitor_dag(spec.model_copy(update={"monitor": no_cooldown}))
    before = len(pages)
    later = {
        "start": window["start"],
        "end": (dt.datetime.fromisoformat(window["end"]) + dt.timedelta(seconds=1)).isoformat(),
    }  # the same rows, a new window
    held = broke.test(run_conf=later)
    assert states(held) == {"judge_window": "success", "announce_drift": "skipped"}
    run = history(engine, spec.name)[0]
    assert run["decision"] == "held_budget" and f"budget '{spec.compute.team}' is spent" in run["decision_reason"]
    assert f"a retraining of {spec.model.search.n_trials} trials reserves up to" in run["decision_reason"]
    [page] = [p["ativo"] for p in pages[before:]]
    assert page["kind"] == "drift_held" and page["decision"] == "held_budget" and page["report"] == run["report_uri"]
    assert open_episodes(engine, spec.name) == [] and len(asset_events(f"x-ativo://drift/{spec.name}")) == 1
