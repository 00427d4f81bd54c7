"""`make demo-erasure`: erase one customer on the running platform (after `make run`) and print the receipt.

It picks a subject whose rows are in the lake and whose decisions are in the prediction log, shows that a caller
without the ``op`` role is refused (403, audited), files the request as the ``operator`` user through the REST API
(the ERASURE DAG with conf), waits for the run, and prints what the receipt says and whether it verifies.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from ativo.config import Settings, load_settings
from ativo.http import HttpError
from ativo.naming import erasure_dag_id
from ativo.orchestrator import AirflowAPI
from ativo_dev.demo_drift import _get
from ativo_dev.supervisor import platform_env, say, url


def pick_subject(live: Settings, spec: Any) -> tuple[str, int, int]:
    """A subject with rows in the latest dataset version and, if any was logged, predictions: (id, rows, logged)."""
    from ativo.data.versioning import open_registry
    from ativo.hashing import platform_pepper, pseudonymise
    from ativo.serve.predlog import read_log
    from ativo.store.db import get_engine
    from ativo.store.objects import open_store

    registry = open_registry(live)
    df = registry.read(registry.resolve(get_engine(live.db_url), spec.name))
    sid = spec.data_schema.subject
    logged = read_log(open_store(live), "predictions", spec.name)
    if len(logged):
        pepper = platform_pepper(live)
        counts = logged["subject"].value_counts()
        for subject in df[sid].drop_duplicates().head(20000):
            n = int(counts.get(pseudonymise(subject, pepper), 0))
            if n:
                return str(subject), int((df[sid] == subject).sum()), n
    subject = str(df[sid].iloc[0])
    return subject, int((df[sid] == subject).sum()), 0


def demo(settings: Settings, spec_name: str) -> int:
    """Run the demo for ``spec_name``; returns the exit status."""
    from ativo import audit
    from ativo.erasure.process import verify_receipt
    from ativo.model.registry import aliases
    from ativo.spec import get_spec
    from ativo.store.db import get_engine
    from ativo.waiting import wait_until

    live = load_settings(platform_env(settings))
    spec = get_spec(spec_name, live.specs_dir)
    before = aliases(spec, live)
    if "champion" not in before:
        say(f"{spec_name} has no champion yet: run `make run` first (and let it finish)")
        return 1
    subject, rows, logged = pick_subject(live, spec)
    say(
        f"{spec_name}: erasing subject {subject} ({rows} row(s) in the lake, {logged} logged decision(s)); "
        f"live: {before}"
    )
    passwords = json.loads((live.airflow_home / "passwords.json").read_text())
    dag_id = erasure_dag_id(spec_name)
    path = f"/api/v2/dags/{dag_id}/dagRuns"
    request_id = f"demo-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}"
    body = {
        "logical_date": None,
        "conf": {"subjects": [subject], "request_id": request_id, "force": True},
        "note": "make demo-erasure",
    }
    try:
        AirflowAPI(live.airflow_url, passwords["analyst"], "analyst").post(path, body)
        say("the analyst (role user) was NOT refused: check the auth manager")
        return 1
    except HttpError as err:
        say(f"as 'analyst' (Airflow role user): HTTP {err.status}, refused and audited")
    api = AirflowAPI(live.airflow_url, passwords["operator"], "operator")
    run = api.post(path, body)
    airflow = url("airflow", settings)
    say(f"as 'operator' (role op): request {request_id} filed; run {airflow}/dags/{dag_id}/runs/{run['dag_run_id']}")

    def ended() -> dict[str, Any] | None:
        got = _get(api, f"{path}/{run['dag_run_id']}")
        return got if got and got["state"] in ("success", "failed") else None

    done = wait_until(ended, 1800, 3, f"run {run['dag_run_id']} of {dag_id} to end")
    say(f"run {done['state']}")
    engine = get_engine(live.db_url)
    receipts = audit.entries(engine, kind="erasure_receipt", ref=request_id)
    if not receipts:
        say(f"no receipt: `.venv/bin/ativo erasure status {request_id}` says why")
        return 1
    r = receipts[-1]["payload"]["receipt"]
    p = r["purged"]
    say(
        f"receipt {r['sha256'][:16]}…: found {r['subjects'][0]['found']}; lake rows removed {p['lake_rows']} from "
        f"{len(p['lake_partitions'])} partition(s); {p['dvc_objects_redacted']} DVC object(s) redacted; dataset "
        f"{r['dataset_versions']['before']} → {r['dataset_versions']['after']}"
    )
    say(
        f"models: retrained {r['models']['retrained']}; live now {r['models']['aliases_after']}; retired "
        f"{r['models']['retired']}; scan clean: {r['scan']['clean']}"
    )
    checked = verify_receipt(live, request_id)
    say(
        (
            "receipt verified against the audit chain"
            if checked["ok"]
            else f"receipt does NOT verify: {checked['problems']}"
        )
        + f"; see `.venv/bin/ativo erasure receipt {request_id}`"
    )
    return 0 if checked["ok"] else 1
