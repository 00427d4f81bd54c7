"""Nothing of an erased subject is left where the receipt does not look.

Three requests reach the platform the three ways a user has: an old client triggers the ERASURE DAG with the subject
ids in its conf (which also leaves the REST API's event-log row quoting the body), a queue message (its body, with
the ids and the op key, kept by Airflow in ``asset_event.extra``) consumed by an earlier run, and ``ativo erasure
request`` with the ids in a file. After the run that closes them, no store holds any of the ids (nor the op key): not
Airflow's metadata DB (a byte scan of the SQLite file and its WAL/journal, so a redacted value left in a free page
counts), not the task-log folder, and not the raw bytes of the platform DB's file and WAL. The receipt says "clean"
and names the stores it scanned.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.component.test_ativo_page import airflow_app  # noqa: F401, F811  (the api-server app with its users)

S_REST, S_QUEUE, S_CLI = "cust-rest-q7Zx41", "cust-queue-k2Wv88", "cust-cli-m5Tn03"


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def _holding(paths: list[Path], needles: list[str]) -> dict[str, list[str]]:
    out = {}
    for path in paths:
        data = path.read_bytes()
        found = [n for n in needles if n.encode() in data]
        if found:
            out[str(path)] = found
    return out


def _old_client_and_queue_history(spec, settings, dag, op_key: str) -> None:
    """What Airflow's metadata DB holds before: a queue message consumed by an earlier run, and the REST API's event-log
    row for the old client's trigger call (the body as ``action_logging`` records it)."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.models.dagrun import DagRun
    from airflow.models.log import Log
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from ativo.erasure.queue import file_messages
    from ativo.hashing import platform_pepper
    from ativo.serve.keys import ApiKeys
    from ativo.store.db import get_engine

    earlier = dag.test(run_conf={})  # nothing pending yet: it consumed the message and filed it
    assert str(earlier.state) == "success"
    message = {
        "MessageId": "m-1",
        "ReceiptHandle": "h-1",
        "Body": json.dumps({"spec": spec.name, "subjects": [S_QUEUE], "request_id": "Q-1", "key": op_key}),
    }
    filed = file_messages(
        get_engine(settings.db_url),
        spec.name,
        [message],
        ApiKeys(settings.home / "serve" / "api_keys.json"),
        platform_pepper(settings),
    )
    assert [a["request_id"] for a in filed.acks] == ["Q-1"]
    with create_session() as session:
        asset = AssetModel(name=f"{spec.name}.erasure_requests", uri=f"x-ativo://erasure-requests/{spec.name}")
        session.add(asset)
        session.flush()
        event = AssetEvent(asset_id=asset.id, extra={"payload": {"message_batch": [message]}})
        event.created_dagruns.append(session.scalars(select(DagRun).where(DagRun.run_id == earlier.run_id)).one())
        session.add(event)
        body = {"logical_date": None, "conf": {"subjects": [S_REST], "request_id": "R-1", "force": True}}
        session.add(
            Log(
                event="trigger_dag_run",
                owner="operator",
                owner_display_name="operator",
                extra=json.dumps({**body, "method": "POST"}),
                dag_id=dag.dag_id,
            )
        )


def test_a_closed_request_leaves_its_subject_in_no_store(airflow_db, settings, spec, tmp_path):
    from ativo import audit, cli
    from ativo.airflow.erasure import build_erasure_dag
    from ativo.erasure import requests as rq
    from ativo.serve.keys import create_key
    from ativo.store.db import get_engine
    from tests.e2e.test_etl_and_training import states

    op_key = create_key(settings.home / "serve" / "api_keys.json", "dpo", ("op",))
    engine = get_engine(settings.db_url)
    dag = build_erasure_dag(spec)
    _old_client_and_queue_history(spec, settings, dag, op_key)

    # a task log that quoted a value, where Airflow writes task logs (AIRFLOW_HOME/logs; /opt/airflow/logs in compose)
    airflow_home = Path(os.environ["AIRFLOW_HOME"])
    task_log = airflow_home / "logs" / f"dag_id={spec.name}__etl" / "run_id=r" / "task_id=t" / "attempt=1.log"
    task_log.parent.mkdir(parents=True, exist_ok=True)
    task_log.write_text(f"row rejected: subject {S_CLI} has no age\n")

    # the op-only CLI route: ids in a file, into the platform DB only
    (tmp_path / "ids.txt").write_text(S_CLI + "\n")
    assert (
        cli.main(
            [
                "erasure",
                "request",
                "--spec",
                spec.name,
                "--subjects-file",
                str(tmp_path / "ids.txt"),
                "--request-id",
                "C-1",
                "--key",
                op_key,
            ]
        )
        == 0
    )

    # the old client's run: filed, then handled by request id with the others
    run = dag.test(run_conf={"subjects": [S_REST], "request_id": "R-1", "force": True})
    assert str(run.state) == "success", states(run)
    for rid in ("R-1", "Q-1", "C-1"):
        req = rq.get(engine, rid)
        assert req["status"] == "closed" and req["subjects"] == [], req
    receipt = audit.entries(engine, kind="erasure_receipt", ref="R-1")[-1]["payload"]["receipt"]
    scan = receipt["scan"]
    assert scan["clean"] is True and scan["hits"] == []
    assert {"airflow metadata db", "airflow task logs", "platform db files", "platform db"} <= set(scan["scanned"])
    assert "airflow metadata db" not in scan["not_scanned"]

    needles = [S_REST, S_QUEUE, S_CLI, op_key]
    metadata_files = [p for p in airflow_home.glob("airflow.db*") if p.is_file()]
    assert metadata_files and _holding(metadata_files, needles) == {}
    assert _holding(_files(airflow_home / "logs"), needles) == {}
    assert "has no age" in task_log.read_text()  # the rest of the log stays
    db_path = Path(settings.db_url.split("///", 1)[1])
    platform_files = [p for p in (db_path, Path(f"{db_path}-wal")) if p.exists()]
    assert _holding(platform_files, needles[:3]) == {}
    assert _holding(_files(settings.home), needles[:3]) == {}  # every other file of the platform, too


def test_the_page_files_a_request_for_op_only_and_triggers_with_its_id_alone(airflow_app, settings, spec):  # noqa: F811
    """The page's erasure route: a ``user`` is refused and audited; an ``op`` files the ids into the platform DB and
    the ERASURE DAG is triggered with the request id alone (nothing in the URL, the run's conf or the event log)."""
    from airflow.models.dagrun import DagRun
    from airflow.models.log import Log
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from ativo import audit
    from ativo.airflow.erasure import build_erasure_dag
    from ativo.erasure import requests as rq
    from ativo.store.db import get_engine

    client, token = airflow_app
    dag = build_erasure_dag(spec)
    assert str(dag.test(run_conf={}).state) == "success"  # the DAG is in Airflow's DB (a trigger needs it)
    engine = get_engine(settings.db_url)
    body = {"spec": spec.name, "subjects": [S_REST], "request_id": "P-1", "now": True}

    refused = client.post("/ativo/erasure/requests", json=body, headers=token("analyst"))
    assert refused.status_code == 403 and rq.get(engine, "P-1") is None
    assert [e["actor"] for e in audit.entries(engine, kind="erasure_refused")] == ["analyst"]
    in_url = client.post(f"/ativo/erasure/requests?subjects={S_REST}", json=body, headers=token("operator"))
    assert in_url.status_code == 400 and rq.get(engine, "P-1") is None

    filed = client.post("/ativo/erasure/requests", json=body, headers=token("operator"))
    assert filed.status_code == 201, filed.text
    assert S_REST not in filed.text and filed.json()["request_id"] == "P-1"
    req = rq.get(engine, "P-1")
    assert req["channel"] == "page" and req["actor"] == "operator" and req["subjects"] == [S_REST]
    with create_session() as session:
        confs = [r.conf for r in session.scalars(select(DagRun).where(DagRun.dag_id == dag.dag_id))]
        logs = [row.extra or "" for row in session.scalars(select(Log))]
    assert {"request_id": "P-1", "force": True} in confs, confs
    assert not [c for c in confs if S_REST in json.dumps(c)] and not [x for x in logs if S_REST in x]


def test_the_scheduler_listener_redacts_before_any_task_and_sweeps_every_run(airflow_db, settings, spec, monkeypatch):
    """What the scheduler does (not dag.test()): Ativo's plugin listener gets the run the scheduler starts, files its
    conf's subjects and leaves the request id, in the scheduler's own session; at a run's end it sweeps every erasure
    run, page by page, and the REST API's event-log rows."""
    import datetime as dt

    from airflow.listeners.listener import get_listener_manager
    from airflow.models.dagrun import DagRun
    from airflow.models.log import Log
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType
    from sqlalchemy import select

    from ativo.airflow import redaction
    from ativo.airflow.erasure import build_erasure_dag
    from ativo.erasure import requests as rq
    from ativo.store.db import get_engine

    monkeypatch.setattr(redaction, "PAGE", 7)  # many pages of runs
    dag_id = build_erasure_dag(spec).dag_id
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    def run(i: int, conf: dict, state: DagRunState) -> DagRun:
        return DagRun(
            dag_id=dag_id,
            run_id=f"rest__{i}",
            conf=conf,
            state=state,
            run_type=DagRunType.MANUAL,
            run_after=t0 + dt.timedelta(minutes=i),
            triggered_by=DagRunTriggeredByType.REST_API,
            triggering_user_name="operator",
        )

    with create_session() as session:  # history: 40 finished runs of old clients, each quoted by the event log
        for i in range(40):
            conf = {"subjects": [f"cust-old-{i:04d}"], "request_id": f"OLD-{i}"}
            session.add(run(i, conf, DagRunState.SUCCESS))
            session.add(
                Log(
                    event="trigger_dag_run",
                    owner="operator",
                    dag_id=dag_id,
                    extra=json.dumps({"conf": conf, "method": "POST"}),
                )
            )
    manager = get_listener_manager()
    assert any(isinstance(p, redaction.ErasureRedactor) for p in manager.pm.get_plugins())  # the plugin's listener
    with create_session() as session:  # the scheduler starts a new run
        started = run(99, {"subjects": [S_REST], "request_id": "R-9", "force": True}, DagRunState.RUNNING)
        session.add(started)
        session.flush()
        manager.hook.on_dag_run_running(dag_run=started, msg="started")
    engine = get_engine(settings.db_url)
    assert rq.get(engine, "R-9")["subjects"] == [S_REST] and rq.get(engine, "R-9")["actor"] == "operator"
    with create_session() as session:
        assert session.scalars(select(DagRun).where(DagRun.run_id == "rest__99")).one().conf == {
            "subjects_redacted": 1,
            "request_id": "R-9",
            "force": True,
        }
        ended = session.scalars(select(DagRun).where(DagRun.run_id == "rest__99")).one()
        ended.state = DagRunState.SUCCESS
        manager.hook.on_dag_run_success(dag_run=ended, msg="success")
    with create_session() as session:
        confs = [r.conf for r in session.scalars(select(DagRun).where(DagRun.run_id.like("rest__%")))]
        logs = [row.extra for row in session.scalars(select(Log).where(Log.dag_id == dag_id, Log.owner == "operator"))]
    assert len(confs) == 41 and not [c for c in confs if "subjects" in c], confs  # (the DB is the test session's)
    assert len(logs) >= 40 and not [x for x in logs if "cust-old" in x]
    assert all(rq.get(engine, f"OLD-{i}") is not None for i in range(40))  # each was filed before its redaction
    db = Path(os.environ["AIRFLOW_HOME"]) / "airflow.db"
    assert _holding([p for p in db.parent.glob("airflow.db*") if p.is_file()], [S_REST, "cust-old-0007"]) == {}
