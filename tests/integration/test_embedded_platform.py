"""The embedded default under load, on a real scheduler: two specs' backfills created at once, training triggered
meanwhile, and the scheduler killed in the middle (issue 12, item 5); and the reconciler's guarantee (item 4).

Airflow runs on the embedded PostgreSQL with its four components and the watchdog, as `make run` starts them. The
backfills are created concurrently through `ativo backfill` (Airflow's REST API). Every run must finish, no
component may stay dead, the killed scheduler must be back and on-call paged within 60 s, and the latest dataset
version of each spec must be trained exactly once however many asset events were merged while training was busy.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SPECS = ("adult_income", "compas_recidivism")
DAYS = 10


def _quick_specs(dest: Path) -> None:
    """The shipped specs with a 2-trial search (the platform is under test here, not the model)."""
    dest.mkdir()
    for name in SPECS:
        doc = yaml.safe_load((ROOT / "include" / "specs" / f"{name}.yaml").read_text())
        doc["model"]["search"]["n_trials"] = 2
        doc["schedule"]["reconcile_cron"] = "*/2 * * * *"
        (dest / f"{name}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


@pytest.mark.timeout(2400)
def test_concurrent_backfills_and_training_survive_a_killed_scheduler(tmp_path, reference_dir, monkeypatch, request):
    from ativo.data.landing import simulate
    from ativo.naming import etl_dag_id, train_dag_id
    from ativo.spec import get_spec
    from ativo.store.objects import open_store
    from ativo.waiting import wait_until
    from ativo_dev import supervisor
    from tests.support.harness import isolated_platform

    _quick_specs(tmp_path / "specs")
    monkeypatch.setenv("ATIVO_SPECS_DIR", str(tmp_path / "specs"))
    monkeypatch.setenv("ATIVO_REFERENCE_DIR", str(reference_dir))
    today = dt.datetime.now(dt.UTC).date()
    start, end = today - dt.timedelta(days=DAYS), today - dt.timedelta(days=1)
    # Under root, PostgreSQL runs as an unprivileged user, which must be able to enter its home (pytest's are 0700).
    home = Path(tempfile.mkdtemp(prefix="ativo-embedded-"))
    home.chmod(0o711)
    request.addfinalizer(lambda: shutil.rmtree(home, ignore_errors=True))
    with isolated_platform(home / "home", database="postgres") as settings:
        store = open_store(settings)
        for name in SPECS:
            simulate(
                get_spec(name, settings.specs_dir),
                store,
                reference_dir,
                start,
                DAYS,
                malformed={start + dt.timedelta(days=3): "out_of_range"},
            )
        api = supervisor.start_services(settings, spec_names=list(SPECS), serve=False, throwaway=True)
        wait_until(
            lambda: api.get("/api/v2/monitor/health")["scheduler"]["status"] == "healthy",
            300,
            2,
            "the scheduler to report healthy",
        )
        for name in SPECS:
            wait_until(
                lambda n=name: api.get(f"/api/v2/dags/{etl_dag_id(n)}")["is_paused"] is False,
                300,
                2,
                f"{etl_dag_id(name)} to be parsed",
                retry_on=(OSError,),
            )

        # Both backfills at once, from two processes, through the CLI an operator runs (with an op key).
        outs: dict[str, subprocess.CompletedProcess] = {}
        operator_env = {**os.environ, "ATIVO_OP_KEY": supervisor.operator_key(settings)}

        def backfill(name: str) -> None:
            outs[name] = subprocess.run(
                [sys.executable, "-m", "ativo.cli", "backfill", "--spec", name, "--from", str(start), "--to", str(end)],
                capture_output=True,
                text=True,
                env=operator_env,
            )

        threads = [threading.Thread(target=backfill, args=(n,)) for n in SPECS]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for name, out in outs.items():
            assert out.returncode == 0, f"{name}: {out.stdout}{out.stderr}"
            assert f"{DAYS} day(s)" in out.stdout

        # Training triggered by hand while the backfills run (it trains whatever the latest version is then).
        def first_version_exists() -> bool:
            return bool(api.get(f"/api/v2/dags/{etl_dag_id('compas_recidivism')}/dagRuns?state=success")["dag_runs"])

        wait_until(first_version_exists, 600, 5, "a first successful ETL run of compas_recidivism")
        api.post(
            f"/api/v2/dags/{train_dag_id('compas_recidivism')}/dagRuns",
            {"dag_run_id": "by-hand", "logical_date": None, "conf": {"n_trials": 1}},
        )

        # The scheduler dies in the middle of it all.
        victim = supervisor.pid_of(settings, "airflow-scheduler")
        assert victim
        killed_at = time.monotonic()
        os.killpg(victim, signal.SIGKILL)

        def restarted() -> int | None:
            pid = supervisor.pid_of(settings, "airflow-scheduler")
            return pid if pid and pid != victim else None

        new_pid = wait_until(restarted, 60, 0.5, "the watchdog to restart the scheduler")
        restart_s = time.monotonic() - killed_at
        alerts = settings.home / "logs" / "alerts.jsonl"

        def paged() -> list[dict]:
            if not alerts.exists():
                return []
            docs = [json.loads(line) for line in alerts.read_text().splitlines() if line.strip()]
            return [d for d in docs if d.get("ativo", {}).get("component") == "airflow-scheduler"]

        [page] = wait_until(paged, 60 - restart_s, 0.5, "on-call to be paged about the scheduler")
        assert page["ativo"]["old_pid"] == victim and page["ativo"]["new_pid"] == new_pid
        print(f"scheduler killed: restarted in {restart_s:.1f} s, paged")

        # Every ETL run finishes: each good day succeeds, the malformed day fails (quarantined).
        def etl_done(name: str) -> bool:
            runs = api.get(f"/api/v2/dags/{etl_dag_id(name)}/dagRuns?limit=100")["dag_runs"]
            days = {
                r["data_interval_start"][:10]: r["state"]
                for r in runs
                if str(start) <= r["data_interval_start"][:10] <= str(end)
            }
            return len(days) == DAYS and all(s in ("success", "failed") for s in days.values())

        for name in SPECS:
            wait_until(lambda n=name: etl_done(n), 1500, 10, f"every ETL run of {name} to finish")
            runs = api.get(f"/api/v2/dags/{etl_dag_id(name)}/dagRuns?limit=100")["dag_runs"]
            failed = sorted({r["data_interval_start"][:10] for r in runs if r["state"] == "failed"})
            assert failed == [str(start + dt.timedelta(days=3))], failed

        # The reconciler: each spec's latest dataset version trained exactly once, whatever was merged.
        from mlflow import MlflowClient
        from sqlalchemy import select

        from ativo.config import load_settings
        from ativo.store.db import dataset_versions, get_engine
        from ativo.train.claims import claim_of, latest_version

        live = load_settings(supervisor.platform_env(settings))
        engine = get_engine(live.db_url)
        client = MlflowClient(live.mlflow_tracking_uri)
        for name in SPECS:
            latest = latest_version(engine, name)
            assert latest is not None
            with engine.connect() as conn:  # concurrent runs may share a version: the latest holds every good day
                parts = conn.execute(
                    select(dataset_versions.c.partitions).where(
                        dataset_versions.c.spec == name, dataset_versions.c.tag == latest[0]
                    )
                ).scalar_one()
            assert len(parts) == DAYS - 1, parts
            for _ in range(2):  # the reconciler twice: the second finds nothing to do
                api.post(f"/api/v2/dags/{name}__reconcile/dagRuns", {"logical_date": None})

            def trained(n: str = name, tag: str = latest[0]) -> bool:
                return any(
                    mv.tags.get("ativo.dataset_version") == tag and mv.tags.get("ativo.gates")
                    for mv in client.search_model_versions(f"name='{n}'")
                )

            wait_until(trained, 1200, 10, f"{name}'s latest dataset version {latest[0]} trained and judged")
            wait_until(
                lambda n=name: (
                    not any(
                        r["state"] in ("queued", "running")
                        for r in api.get(f"/api/v2/dags/{train_dag_id(n)}/dagRuns?limit=100")["dag_runs"]
                    )
                ),
                900,
                10,
                f"every training run of {name} to finish",
            )
            on_latest = [
                mv
                for mv in client.search_model_versions(f"name='{name}'")
                if mv.tags.get("ativo.dataset_version") == latest[0]
            ]
            assert len(on_latest) == 1, [(mv.version, mv.tags.get("ativo.airflow.dag_run_id")) for mv in on_latest]
            claim = claim_of(engine, name, latest[0])
            assert claim is not None
            train_runs = api.get(f"/api/v2/dags/{train_dag_id(name)}/dagRuns?limit=100")["dag_runs"]
            assert all(r["state"] == "success" for r in train_runs), [(r["dag_run_id"], r["state"]) for r in train_runs]
            print(
                f"{name}: {len(train_runs)} training run(s) for {latest[1]} dataset versions; the latest "
                f"({latest[0]}) trained once, by {claim['dag_run_id']} ({claim['trigger']})"
            )

        # Erasure through the REST API: a 'user' gets 403 (audited); an 'op' files a request that the DAG closes.
        _erasure_over_rest(settings, api)

        # No component stayed dead.
        alive = supervisor.status(settings)
        assert all(alive[n] for n in (*supervisor.AIRFLOW, "postgres", "mlflow", "watchdog")), alive


def _erasure_over_rest(settings, api) -> None:
    import json

    from ativo import audit
    from ativo.erasure import requests as rq
    from ativo.http import HttpError
    from ativo.orchestrator import AirflowAPI
    from ativo.store.db import get_engine
    from ativo.waiting import wait_until

    passwords = json.loads((settings.airflow_home / "passwords.json").read_text())
    path = "/api/v2/dags/compas_recidivism__erasure/dagRuns"
    body = {"logical_date": None, "conf": {"subjects": ["person-nobody"], "request_id": "REST-1", "force": True}}
    with pytest.raises(HttpError) as refused:
        AirflowAPI(api.base, passwords["analyst"], "analyst").post(path, body)
    assert refused.value.status == 403
    engine = get_engine(settings.db_url)
    refusals = audit.entries(engine, kind="erasure_refused")
    assert refusals and all(r["actor"] == "analyst" and r["ref"] == "compas_recidivism" for r in refusals)
    run = AirflowAPI(api.base, passwords["operator"], "operator").post(path, body)
    wait_until(
        lambda: api.get(f"{path}/{run['dag_run_id']}")["state"] in ("success", "failed"),
        600,
        3,
        "the erasure run to finish",
    )
    assert api.get(f"{path}/{run['dag_run_id']}")["state"] == "success"
    req = rq.get(engine, "REST-1")
    assert req["status"] == "closed" and req["channel"] == "rest" and req["actor"] == "operator"
    [receipt] = audit.entries(engine, kind="erasure_receipt", ref="REST-1")
    assert receipt["payload"]["receipt"]["subjects"][0]["found"] is False  # acknowledged, reported not found
    # the next run deletes the finished run whose conf named the subject from Airflow's metadata DB
    nxt = api.post(path, {"logical_date": None, "conf": {"force": True}})
    wait_until(
        lambda: api.get(f"{path}/{nxt['dag_run_id']}")["state"] in ("success", "failed"),
        300,
        3,
        "the next erasure run to finish",
    )
    with pytest.raises(HttpError) as gone:
        api.get(f"{path}/{run['dag_run_id']}")
    assert gone.value.status == 404
    assert [r["payload"]["dag_run_id"] for r in audit.entries(engine, kind="erasure_airflow_run_deleted")] == [
        run["dag_run_id"]
    ]
