"""A production incident becomes a regression test (dag.test() training, a real `ativo serve`, the real CLI).

A champion trained by the TRAIN DAG serves a confident decision; an operator records it as wrong with
`ativo incident`; on-call is paged with its lineage; the next candidate, trained on a newer dataset version, decides
that case the same way and is rejected by the `regression` gate alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.e2e.test_drift_retrain import quick
from tests.e2e.test_etl_and_training import states


def test_an_incident_rejects_the_next_candidate_that_decides_it_wrongly(
    airflow_db, settings, spec, webhook, reference_dir, monkeypatch
):
    from mlflow import MlflowClient

    from ativo.airflow.dags.train import build_train_dag
    from ativo.data.etl import run_interval
    from ativo.data.split import split_frame
    from ativo.data.training import load_dataset
    from ativo.deploy.promotion import promote
    from ativo.evaluate.regression import cases
    from ativo.evaluate.suite import request_rows
    from ativo.http import post_json
    from ativo.store.db import get_engine
    from ativo.waiting import wait_until
    from ativo_dev.supervisor import operator_key
    from tests.support.harness import land_dataset, start_server

    url, pages = webhook
    monkeypatch.setenv("AIRFLOW_CONN_ATIVO_ONCALL", json.dumps({"conn_type": "http", "extra": {"webhook_url": url}}))
    spec = quick(spec)
    land_dataset(settings, spec.name, days=3, etl_days=2)
    dag = build_train_dag(spec)
    first = dag.test(run_conf={"n_trials": 1})
    assert str(first.state) == "success", states(first)
    client = MlflowClient(settings.mlflow_tracking_uri)
    v1 = str(client.get_model_version_by_alias(spec.registered_model_name, "challenger").version)
    promote(spec, settings, v1, reason="the first version", actor="test")

    # The champion's most confident "no" among real requests: the operator says it was a "yes".
    _, df = load_dataset(spec, settings, None)
    rows = request_rows(spec, split_frame(df, spec).test, 40)
    server = start_server(settings, args=("--flush-s", "0.2"))
    try:
        auth = {"Authorization": f"Bearer {server.key}"}
        answers = [
            post_json(f"{server.url}/predict", {"features": r, "subject_id": f"cust-{i}"}, timeout=30, headers=auth)
            for i, r in enumerate(rows)
        ]
    finally:
        server.stop()
    wrong = min(answers, key=lambda a: a["score"])
    assert wrong["decision"] == 0 and wrong["score"] < 0.1

    env = {**os.environ, "ATIVO_OP_KEY": operator_key(settings)}  # recording an incident changes state: an op key
    cli = [
        sys.executable,
        "-m",
        "ativo.cli",
        "incident",
        wrong["prediction_id"],
        "--expected",
        "1",
        "--note",
        "a customer who was wrongly refused (ticket 4711)",
    ]
    out = wait_until(
        lambda: (p := subprocess.run(cli, capture_output=True, text=True, env=env)).returncode == 0 and p,
        30,
        1,
        "the prediction to be in the log and recorded",
    )
    assert f"decided 0 (score {wrong['score']:.4f}) by version {v1}, expected 1" in out.stdout, out.stdout
    assert "on-call paged" in out.stdout
    [case] = cases(get_engine(settings.db_url), spec.name)
    assert (case["expected"], case["decision"], case["model_version"]) == (1, 0, v1)
    assert case["features"] == rows[answers.index(wrong)]
    assert case["actor"] == "key:ativo-dev"  # the op key that recorded it, not the shell's user
    [page] = [p for p in pages if p.get("ativo", {}).get("kind") == "incident_recorded"]
    assert page["ativo"]["prediction_id"] == wrong["prediction_id"] and page["ativo"]["model_version"] == v1
    assert page["ativo"]["dataset_version"] == case["dataset_version"] and page["ativo"]["run_id"]
    assert page["ativo"]["runbook_url"].endswith("/ativo/runbooks/incident-recorded")
    again = subprocess.run(cli, capture_output=True, text=True, env=env)
    assert again.returncode == 0 and "nothing changed" in again.stdout  # idempotent
    other = subprocess.run([*cli[:6], "0", *cli[7:]], capture_output=True, text=True, env=env)
    assert other.returncode != 0 and "already recorded" in other.stderr  # a conflicting record is refused

    # A newer dataset version, a new candidate: it still says "no" to that customer, and only regression objects.
    run_interval(spec, settings, "2026-01-03")
    second = dag.test(run_conf={"n_trials": 1})
    assert states(second)["decide"] == "success", states(second)
    newest = max(client.search_model_versions(f"name='{spec.registered_model_name}'"), key=lambda m: int(m.version))
    assert str(newest.version) != v1
    import mlflow

    report = json.loads(Path(mlflow.artifacts.download_artifacts(newest.tags["ativo.gate_report_uri"])).read_text())
    failed = [g for g, r in report["gates"].items() if not r["passed"]]
    assert failed == ["regression"], {g: report["gates"][g]["reason"] for g in failed}
    assert report["gates"]["regression"]["metrics"] == {"wrong_fraction": 1.0, "cases": 1, "wrong": 1}
    assert "a customer who was wrongly refused" in report["gates"]["regression"]["reason"]
    assert str(client.get_model_version_by_alias(spec.registered_model_name, "champion").version) == v1
    rejected = [p for p in pages if p.get("ativo", {}).get("kind") == "model_rejected"]
    assert rejected and rejected[-1]["ativo"]["failed_gates"] == ["regression"]
    assert "/ativo/reports/run/" in rejected[-1]["ativo"]["model_card_url"]  # by reference, no host path
    assert rejected[-1]["ativo"]["runbook_url"].endswith("/ativo/runbooks/model-rejected")
