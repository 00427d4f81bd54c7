"""Erasure end to end: a subject in several partitions, with predictions and labels logged by the real inference
API, is erased by the generated ERASURE DAG (dag.test()) together with 999 other coalesced requests; afterwards no
store holds them, every historical dataset version reads back with exactly its other rows, the champion and the
previous version are retrained on redacted data (their lineage names it and the request), and the receipt verifies.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from tests.e2e.test_drift_retrain import quick
from tests.e2e.test_etl_and_training import run_etl, states
from tests.support.scenarios import spread_subject

START = dt.date(2026, 3, 1)
DAYS = [START + dt.timedelta(days=i) for i in range(3)]


def test_erasure_purges_everywhere_and_redeploys_retrained_models(
    airflow_db, settings, spec, reference_dir, webhook, monkeypatch
):
    import json

    import httpx
    from mlflow import MlflowClient

    from ativo import audit
    from ativo.airflow.dags.etl import build_etl_dag
    from ativo.airflow.dags.train import build_train_dag
    from ativo.airflow.erasure import build_erasure_dag
    from ativo.data.landing import simulate
    from ativo.data.versioning import open_registry, versions_of
    from ativo.deploy.promotion import promote
    from ativo.erasure import requests as rq
    from ativo.erasure.process import verify_receipt
    from ativo.erasure.purge import Targets
    from ativo.erasure.scan import scan
    from ativo.hashing import platform_pepper, pseudonymise
    from ativo.serve.predlog import read_log
    from ativo.store.db import get_engine
    from ativo.store.objects import open_store
    from tests.support.harness import start_server

    url, pages = webhook
    monkeypatch.setenv("AIRFLOW_CONN_ATIVO_ONCALL", json.dumps({"conn_type": "http", "extra": {"webhook_url": url}}))
    spec = quick(spec)
    store, engine = open_store(settings), get_engine(settings.db_url)
    simulate(spec, store, reference_dir, START, len(DAYS))
    erased = spread_subject(store, spec, DAYS)  # a customer who comes back: in days 2 and 3 too
    etl, train = build_etl_dag(spec), build_train_dag(spec)
    assert str(run_etl(etl, DAYS[0]).state) == "success"
    assert str(train.test(run_conf={"n_trials": 1}).state) == "success"  # version 1 on v0001
    for d in DAYS[1:]:
        assert str(run_etl(etl, d).state) == "success"
    assert str(train.test(run_conf={"n_trials": 1}).state) == "success"  # version 2 on v0003
    client = MlflowClient(settings.mlflow_tracking_uri)
    name = spec.registered_model_name
    promote(spec, settings, "1", reason="the first version", actor="test")
    promote(spec, settings, "2", reason="the second version", actor="test")  # version 1 becomes previous

    sid, rid = spec.data_schema.subject, spec.data_schema.record_id
    registry = open_registry(settings)
    before = {v.tag: registry.read(v) for v in versions_of(engine, spec.name)}
    assert sorted(before) == [f"{spec.name}-v000{i}" for i in (1, 2, 3)]
    latest = before[f"{spec.name}-v0003"]
    assert (latest[sid] == erased).sum() == 5  # one row on day 1, two on each later day: three partitions
    others = latest.loc[latest[sid] != erased, sid].drop_duplicates().sample(499, random_state=3).tolist()

    # the subject is served (and labelled) through the real API: its predictions are logged under its pseudonym
    server = start_server(settings)
    try:
        features = latest.loc[latest[sid] == erased, spec.data_schema.feature_names].head(1)
        row = {
            k: (None if pd.isna(v) else (v.item() if hasattr(v, "item") else v))
            for k, v in features.iloc[0].to_dict().items()
        }
        headers = {"Authorization": f"Bearer {server.key}"}
        answer = httpx.post(
            f"{server.url}/models/{spec.name}/predict",
            headers=headers,
            timeout=30,
            json={"rows": [{"features": row, "subject_id": erased}] * 3},
        ).json()
        pred_ids = [p["prediction_id"] for p in answer["predictions"]]
        httpx.post(
            f"{server.url}/models/{spec.name}/feedback",
            headers=headers,
            timeout=30,
            json={"labels": [{"prediction_id": p, "label": 1} for p in pred_ids]},
        ).raise_for_status()
    finally:
        server.stop()
    pseudonym = pseudonymise(erased, platform_pepper(settings))
    assert (read_log(store, "predictions", spec.name)["subject"] == pseudonym).sum() == 3

    # one request through the DAG's conf, 999 more coalesced with it (half of them about nobody in the data)
    pepper = platform_pepper(settings)
    for i, subject in enumerate(others + [f"cust-nobody-{i}" for i in range(500)]):
        rq.file_request(
            engine,
            spec=spec.name,
            subjects=[subject],
            pepper=pepper,
            actor="test",
            channel="cli",
            request_id=f"bulk-{i}",
        )
    record_ids = set(latest.loc[latest[sid] == erased, rid])
    run = build_erasure_dag(spec).test(run_conf={"subjects": [erased], "request_id": "R-1", "force": True})
    got = states(run)
    assert str(run.state) == "success", got
    retrains = [ti for ti in run.get_task_instances() if ti.task_id == "retrain"]
    assert len(retrains) == 2 and all(str(ti.state) == "success" for ti in retrains)  # one per live version
    [batch] = {rq.get(engine, f"bulk-{i}")["batch_id"] for i in range(999)} | {rq.get(engine, "R-1")["batch_id"]}
    assert len(rq.batch(engine, batch)["requests"]) == 1000

    # nothing anywhere: subject, its record ids, its pseudonym
    gone = set(others) | {erased}
    targets = Targets(
        sorted(gone),
        [pseudonymise(s, pepper) for s in sorted(gone)],
        record_ids | set(latest.loc[latest[sid].isin(others), rid]),
        set(pred_ids),
    )
    result = scan(settings, targets)
    assert result["clean"], result["hits"]
    assert result["scanned"]["files"] > 50 and result["scanned"]["platform db"] > 1000

    # every historical version reads back with exactly its other rows
    for tag, frame in before.items():
        [version] = [v for v in versions_of(engine, spec.name) if v.tag == tag]
        after = registry.read(version)
        want = frame[~frame[sid].isin(gone)].sort_values(rid).reset_index(drop=True)
        pd.testing.assert_frame_equal(after.sort_values(rid).reset_index(drop=True), want)
    assert versions_of(engine, spec.name)[-1].tag == f"{spec.name}-v0004"  # the purged lake, a new version

    # the live versions are retrained ones; their lineage names the redacted dataset version and the request
    aliases = {a: str(v) for a, v in client.get_registered_model(name).aliases.items()}
    assert aliases["champion"] not in ("1", "2") and aliases["previous"] not in ("1", "2")
    champion = client.get_model_version(name, aliases["champion"])
    assert champion.tags["ativo.erasure_retrained_from"] == "2"
    assert champion.tags["ativo.dataset_version"] == f"{spec.name}-v0003"
    assert champion.tags["ativo.dataset_redacted"].startswith(f"{spec.name}-v0003~r")
    assert champion.tags["ativo.erasure_batch"] == str(batch) and champion.tags["ativo.erasure_request_count"] == "1000"
    assert "R-1" in rq.batch(engine, batch)["requests"]  # the batch names every request it answered
    assert client.get_model_version(name, aliases["previous"]).tags["ativo.erasure_retrained_from"] == "1"
    from ativo.model.artifact import load_version

    for old in ("1", "2"):
        mv = client.get_model_version(name, old)
        assert mv.tags["ativo.erasure_retired"].startswith(f"erasure batch {batch}: 1000 request(s)")
        model_id = client.get_run(mv.run_id).data.tags["ativo.model_uri"].removeprefix("models:/")
        assert client.list_logged_model_artifacts(model_id) == []  # the model files are gone
        with pytest.raises(Exception):  # noqa: B017  (whatever the loader raises: nothing is left to load)
            load_version(spec, settings.mlflow_tracking_uri, old)
    assert load_version(spec, settings.mlflow_tracking_uri, aliases["champion"]).version == aliases["champion"]

    # the receipt: closed, content-hashed, chained
    req = rq.get(engine, "R-1")
    assert req["status"] == "closed" and req["subjects"] == []
    checked = verify_receipt(settings, "R-1")
    assert checked["ok"], checked
    [row] = audit.entries(engine, kind="erasure_receipt", ref="R-1")
    receipt = row["payload"]["receipt"]
    assert receipt["subjects"][0]["found"] is True and receipt["scan"]["clean"] is True
    assert receipt["dataset_versions"]["after"] == f"{spec.name}-v0004"
    assert set(receipt["models"]["deployed"]) == {"1", "2"}
    nobody = audit.entries(engine, kind="erasure_receipt", ref="bulk-998")[0]["payload"]["receipt"]
    assert nobody["subjects"][0]["found"] is False  # acknowledged, reported not found
    assert not [p for p in pages if p.get("ativo", {}).get("kind", "").startswith("erasure")]

    # a retraining that fails its gates: on-call is paged, the request stays open with the reason, the purge is done
    strict = spec.model_copy(
        update={
            "gates": spec.gates.model_copy(
                update={"performance": spec.gates.performance.model_copy(update={"min_auc": 0.999})}
            )
        }
    )
    second = latest.loc[~latest[sid].isin(gone), sid].iloc[0]
    failed = build_erasure_dag(strict).test(run_conf={"subjects": [second], "request_id": "R-2", "force": True})
    assert str(failed.state) == "failed" and states(failed)["verify"] == "failed", states(failed)
    req = rq.get(engine, "R-2")
    assert req["status"] == "open" and "failed its gates" in req["reason"] and "performance" in req["reason"]
    [page] = [p["ativo"] for p in pages if p.get("ativo", {}).get("kind") == "erasure_open"]
    assert page["requests"] == ["R-2"] and "failed its gates" in page["reason"]
    lake = registry.read(versions_of(engine, spec.name)[-1])
    assert second not in set(lake[sid])  # the data purge completed
    assert {a: str(v) for a, v in client.get_registered_model(name).aliases.items()} == aliases  # nothing switched
