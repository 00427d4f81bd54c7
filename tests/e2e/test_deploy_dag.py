"""The deploy DAG with dag.test(): first version straight to champion, a sound canary promoted, a shifted one rolled
back with a page, a broken one stopped by the infra check — against a real `ativo serve` process under live traffic
and a real MLflow registry."""

from __future__ import annotations

import threading

import pytest

from tests.e2e.test_etl_and_training import states


@pytest.fixture
def quick_spec(spec):
    """The reference spec watched every second, for at most a minute (a sound canary is promoted once shown sound)."""
    deploy = spec.deploy.model_copy(
        update={
            "canary_percent": 25,
            "canary_window_minutes": 1,
            "watch_interval_seconds": 1,
            "min_canary_requests": 50,
        }
    )
    return spec.model_copy(update={"deploy": deploy})


def test_deploy_dag_promotes_a_sound_canary_and_rolls_back_a_bad_one(
    airflow_db, settings, quick_spec, spec, adult_split, small_boosters, webhook, monkeypatch, tmp_path
):
    import json

    from ativo.airflow.dags.deploy import build_deploy_dag
    from ativo.deploy.promotion import history
    from ativo.evaluate.suite import request_rows
    from ativo.model.registry import aliases
    from ativo_dev.loadgen import run_load
    from tests.support.harness import register_booster, start_server

    url, pages = webhook
    monkeypatch.setenv("AIRFLOW_CONN_ATIVO_ONCALL", json.dumps({"conn_type": "http", "extra": {"webhook_url": url}}))
    split = adult_split
    v1, v2, v3, v4 = (
        register_booster(settings, spec, small_boosters[name], artifact_root=tmp_path / "art")
        for name in ("good", "good2", "shifted", "broken")
    )

    server = start_server(settings, args=("--refresh-s", "0.2"), wait_for=None)  # nothing to serve yet
    monkeypatch.setenv("ATIVO_SERVE_URLS", server.url)
    dag = build_deploy_dag(quick_spec)
    first = dag.test(run_conf={"version": v1})
    assert str(first.state) == "success", states(first)
    assert aliases(spec, settings) == {"champion": v1}  # no champion yet: straight in, once the server serves it
    payloads = [
        json.dumps({"features": r, "subject_id": f"c-{i}"}).encode()
        for i, r in enumerate(request_rows(spec, split.test, 2000))
    ]
    stop = threading.Event()
    failed = []

    def traffic() -> None:
        while not stop.is_set():
            r = run_load(
                server.url + "/predict",
                payloads,
                headers={"Authorization": f"Bearer {server.key}"},
                duration_s=2,
                warmup_s=0,
                concurrency=2,
                stop=stop,
            )
            failed.append(r.failed)

    t = threading.Thread(target=traffic, daemon=True)
    t.start()
    try:
        second = dag.test(run_conf={"version": v2})
        assert str(second.state) == "success", states(second)
        assert aliases(spec, settings) == {"champion": v2, "previous": v1}
        third = dag.test(run_conf={"version": v3})
        assert str(third.state) == "success", states(third)  # the rollback worked: the run did its job
        assert aliases(spec, settings) == {"champion": v2, "previous": v1}
        fourth = dag.test(run_conf={"version": v4})  # cannot score the schema: never reaches a caller
        assert str(fourth.state) == "failed"
        assert states(fourth)["infra_check"] == "failed" and states(fourth)["start"] == "upstream_failed"
        assert aliases(spec, settings) == {"champion": v2, "previous": v1}
    finally:
        stop.set()
        t.join()
        server.stop()
    records = {(r["action"], r["version"]): r for r in history(spec, settings)}
    assert "canary shown within every limit" in records[("promote", v2)]["reason"]
    assert "score distribution" in records[("rollback", v3)]["reason"]  # named even when a loaded host is slow too
    # each move names the run that made it: the canary's start and its end alike (the start and conclude tasks)
    assert records[("promote", v1)]["dag_run"] == {"dag_id": dag.dag_id, "run_id": first.run_id}
    for action, version, run in (("start_canary", v2, second), ("promote", v2, second), ("rollback", v3, third)):
        assert records[(action, version)]["dag_run"] == {"dag_id": dag.dag_id, "run_id": run.run_id}, action
    rolled = [p for p in pages if p.get("ativo", {}).get("kind") == "model_rolled_back"]
    assert [p["ativo"]["version"] for p in rolled] == [v3]
    infra_pages = [p for p in pages if "infra_check" in p.get("text", "")]
    assert infra_pages and f"version {v4} failed the infra check" in json.dumps(infra_pages)
    assert sum(failed) == 0
