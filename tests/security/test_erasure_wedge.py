"""Erasure cannot be wedged: whatever a hostile user or key holder puts where the platform keeps it, the erasure of
the subject it names still closes with a verified receipt.

The routes tried: a refused action on the Ativo page and a refused REST trigger of ``<subject>__erasure`` by a
``user``-role login (the audit log, whose rows cannot be edited), an ``X-Request-Id`` and a feedback
``prediction_id`` holding a subject id (the prediction and label logs), and queue messages with a string where the
subjects belong, a short id, a non-string key (the intake). Then the subject is erased (the lake, a dataset version,
its own logged decisions) and the receipt verifies. One batch has one owner: ``ativo erasure run`` beside a DAG run
that holds the batch waits, or refuses saying who holds it.
"""

from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace

import pytest

from tests.component.test_ativo_page import airflow_app  # noqa: F401  # a fixture: Airflow's api-server with logins
from tests.component.test_serving import _client, _platform

START = dt.date(2026, 3, 1)


@pytest.fixture(scope="module")
def plat(spec, reference_dir, small_boosters, tmp_path_factory):
    """One day in the lake (a dataset version, the subject index), a champion serving, an op key: the module's
    tests share it, each erasing subjects of its own."""
    from ativo.config import load_settings
    from ativo.data.etl import run_interval
    from ativo.data.landing import simulate
    from ativo.data.versioning import open_registry
    from ativo.serve.keys import create_key
    from ativo.store.db import get_engine
    from ativo.store.objects import open_store

    root = tmp_path_factory.mktemp("wedge")
    env = {"ATIVO_HOME": str(root / "ativo"), "ATIVO_MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        settings = load_settings()
        simulate(spec, open_store(settings), reference_dir, START, 3)
        run_interval(spec, settings, START.isoformat())
        engine = get_engine(settings.db_url)
        registry = open_registry(settings)
        frame = registry.read(registry.resolve(engine, spec.name))
        sid = spec.data_schema.subject
        subjects = iter(frame[sid].drop_duplicates().sample(12, random_state=11).tolist())
        served = _platform(settings, spec, [small_boosters["good"]], root)
        op = create_key(settings.home / "serve" / "api_keys.json", "dpo", ("op",))
        yield SimpleNamespace(
            settings=settings, engine=engine, env=env, frame=frame, subjects=subjects, served=served, op=op
        )


def _erased(plat, spec, subjects: list[str], request_id: str) -> dict:
    """File the subjects' erasure as the operator does and process it; it must close with a verified receipt."""
    from ativo import audit
    from ativo.erasure import requests as rq
    from ativo.erasure.process import process, verify_receipt
    from ativo.hashing import platform_pepper

    rq.file_request(
        plat.engine,
        spec=spec.name,
        subjects=subjects,
        pepper=platform_pepper(plat.settings),
        actor="key:dpo",
        channel="cli",
        request_id=request_id,
    )
    done = process(spec, plat.settings, run_id=f"test-{request_id}")
    assert done["closed"]["closed"] is True, done["closed"]["reason"]
    assert done["purged"]["lake_rows"] >= len(subjects)  # they were in the data, and are not now
    assert rq.get(plat.engine, request_id)["status"] == "closed"
    checked = verify_receipt(plat.settings, request_id)
    assert checked["ok"], checked["problems"]
    [row] = audit.entries(plat.engine, kind="erasure_receipt", ref=request_id)
    assert all(s["found"] for s in row["payload"]["receipt"]["subjects"])
    log = json.dumps(audit.entries(plat.engine), default=str)
    assert not [s for s in subjects if s in log]  # the audit log never held them
    return done


def test_a_user_naming_a_subject_in_a_refused_page_action_rest_trigger_or_cli_command_does_not_wedge_its_erasure(
    airflow_app,  # noqa: F811
    plat,
    spec,
    monkeypatch,
):
    from ativo import audit
    from ativo.cli import main

    for k, v in plat.env.items():  # the api-server's requests audit into this platform
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("ATIVO_OP_KEY", raising=False)
    client, token = airflow_app
    by_page, by_rest, by_cli = next(plat.subjects), next(plat.subjects), next(plat.subjects)
    refused = client.post(
        f"/ativo/actions/{by_page}",
        content="spec=adult_income",
        headers={"content-type": "application/x-www-form-urlencoded", "accept": "application/json", **token("analyst")},
    )
    trigger = client.post(
        f"/api/v2/dags/{by_rest}__erasure/dagRuns", json={"logical_date": None, "conf": {}}, headers=token("analyst")
    )
    assert refused.status_code == trigger.status_code == 403
    assert main(["erasure", "request", "--spec", by_cli, "--subject", "cust-anyone"]) == 1  # no op key: refused

    _erased(plat, spec, [by_page, by_rest, by_cli], "R-page-rest-cli")
    page = audit.entries(plat.engine, kind="page_refused")[-1]
    rest, cli = audit.entries(plat.engine, "erasure_refused")[-2:]
    assert page["actor"] == rest["actor"] == "analyst"  # audited, by who and how; the values pseudonymised
    assert set(page["payload"][audit.PSEUDONYMS]) == {"action"} and set(rest["payload"][audit.PSEUDONYMS]) == {"dag_id"}
    assert cli["payload"]["channel"] == "cli" and set(cli["payload"][audit.PSEUDONYMS]) == {"spec"}
    assert by_page not in refused.text  # nor does the answer quote it


def test_a_key_holder_naming_a_subject_in_a_request_id_or_feedback_id_does_not_wedge_its_erasure(plat, spec):
    import contextlib

    import pandas as pd

    from ativo.serve.predlog import read_log
    from ativo.store.objects import open_store

    by_header, by_feedback = next(plat.subjects), next(plat.subjects)
    features = plat.frame[spec.data_schema.feature_names]

    def row(i: int, subject: str | None = None) -> dict:
        values = {
            k: (None if pd.isna(v) else (v.item() if hasattr(v, "item") else v))
            for k, v in features.iloc[i].to_dict().items()
        }
        return {"features": values, **({"subject_id": subject} if subject else {})}

    own = int((plat.frame[spec.data_schema.subject] == by_header).to_numpy().argmax())
    with contextlib.contextmanager(_client)(plat.settings, spec, plat.served) as c:
        # someone else's decision, under the subject's id as its request id
        answer = c.post(f"/models/{spec.name}/predict", json=row(0), headers={"X-Request-Id": by_header})
        assert answer.status_code == 200, answer.text
        again = c.post(
            f"/models/{spec.name}/predict", json=row(1), headers={"X-Request-Id": answer.headers["x-request-id"]}
        )  # a retry quoting the id the server gave keeps it
        mine = c.post(f"/models/{spec.name}/predict", json=row(own, by_header)).json()  # the subject's own decision
        c.headers["Authorization"] = f"Bearer {plat.served['feedback']}"
        bad = [
            c.post(f"/models/{spec.name}/feedback", json={"prediction_id": hostile, "label": 1})
            for hostile in (by_feedback, f"{START:%Y%m%d}-{by_feedback}", f"{START:%Y%m%d}-0 {by_feedback}")
        ]
        ok = c.post(f"/models/{spec.name}/feedback", json={"prediction_id": mine["prediction_id"], "label": 1})
        assert ok.status_code == 200, ok.text
    store = open_store(plat.settings)
    assert len(read_log(store, "predictions", spec.name)) == 3

    _erased(plat, spec, [by_header, by_feedback], "R-serve")
    assert len(read_log(store, "predictions", spec.name)) == 2  # its own decision went
    # a caller's own request id is replaced by the server's (a retry may quote the one it was given); a prediction
    # id /predict did not make is refused, naming the field, without quoting it
    assert answer.headers["x-request-id"].startswith("req-") and by_header not in answer.text
    assert again.headers["x-request-id"] == answer.headers["x-request-id"]
    assert [(r.status_code, r.json()["errors"][0]["field"]) for r in bad] == [(422, "prediction_id")] * 3
    assert not [r for r in bad if by_feedback in r.text]


def test_malformed_queue_messages_are_refused_audited_and_dead_lettered_and_wedge_nothing(plat, spec):
    from ativo import audit
    from ativo.erasure import requests as rq
    from ativo.erasure.queue import file_messages
    from ativo.hashing import platform_pepper
    from ativo.serve.keys import ApiKeys

    named, valid = next(plat.subjects), next(plat.subjects)
    bodies = {
        "m-string": {"spec": spec.name, "subjects": named, "key": plat.op},
        "m-short": {"spec": spec.name, "subjects": [named, "12"], "key": plat.op},
        "m-number": {"spec": spec.name, "subjects": [named, 7], "key": plat.op},
        "m-key": {"spec": spec.name, "subjects": [named], "key": {"op": named}},
        "m-rid": {"spec": spec.name, "subjects": [named], "request_id": named, "key": plat.op},
        "m-json": "[" + named,
        "m-ok": {"spec": spec.name, "subjects": [valid], "key": plat.op},
    }
    messages = [
        {"MessageId": mid, "ReceiptHandle": f"h-{mid}", "Body": b if isinstance(b, str) else json.dumps(b)}
        for mid, b in bodies.items()
    ]
    before = len(audit.entries(plat.engine))
    filed = file_messages(
        plat.engine,
        spec.name,
        messages,
        ApiKeys(plat.settings.home / "serve" / "api_keys.json"),
        platform_pepper(plat.settings),
        min_subject_length=spec.erasure.min_subject_id_length,
    )
    assert [a["subjects"] for a in filed.acks] == [1]  # the valid message is filed all the same
    assert sorted(m["Id"] for m in filed.delete) == sorted(bodies)  # every message leaves the queue
    why = {d["message_id"]: (d["field"], d["reason"]) for d in filed.dead_letter}
    assert sorted(why) == sorted(set(bodies) - {"m-ok"})
    assert why["m-string"][0] == "subjects" and "a string where a list belongs" in why["m-string"][1]
    assert why["m-short"][0] == "subjects[1]" and "erasure.min_subject_id_length (4)" in why["m-short"][1]
    assert why["m-number"][0] == "subjects[1]" and "must be a string" in why["m-number"][1]
    assert why["m-key"][0] == "key" and why["m-rid"][0] == "request_id" and why["m-json"][0] == "(body)"
    rows = audit.entries(plat.engine)[before:]
    assert len(rows) == 6 and all(audit.PSEUDONYMS in r["payload"] for r in rows)  # one each, pseudonyms only
    shown = json.dumps(filed.__dict__) + json.dumps(rows, default=str)
    assert named not in shown and plat.op not in shown
    assert [r["request_id"] for r in rq.pending(plat.engine, spec.name)] == [filed.acks[0]["request_id"]]

    _erased(plat, spec, [named], "R-queue")  # processed with the valid message's request
    assert rq.get(plat.engine, filed.acks[0]["request_id"])["status"] == "closed"


def test_one_batch_has_one_owner_a_second_runner_waits_or_is_told_who_holds_it(plat, spec):
    import threading

    from ativo.erasure import requests as rq
    from ativo.erasure.process import process, verify_receipt
    from ativo.hashing import platform_pepper

    subject = next(plat.subjects)
    rq.file_request(
        plat.engine,
        spec=spec.name,
        subjects=[subject],
        pepper=platform_pepper(plat.settings),
        actor="key:dpo",
        channel="cli",
        request_id="R-lease",
    )
    claimed = rq.claim_batch(plat.engine, spec.name, 0, "scheduled__2026-03-02T00:00:00+00:00")  # a DAG run's
    assert claimed.batch_id is not None
    with pytest.raises(rq.ErasureBusy, match=r"ERASURE DAG run 'scheduled__2026-03-02T00:00:00\+00:00'.*one owner"):
        process(spec, plat.settings, run_id="cli")
    assert rq.batch(plat.engine, claimed.batch_id)["dag_run_id"].startswith("scheduled__")  # not taken over

    # the DAG run's batch stays open (a step failed): its lease goes, and the runner that waited takes the batch over
    threading.Timer(1.0, rq.mark, (plat.engine, claimed.batch_id, "open", "step purge did not finish")).start()
    done = process(spec, plat.settings, run_id="cli", wait_s=60)
    assert done["batch"] == claimed.batch_id and done["closed"]["closed"] is True, done["closed"]["reason"]
    assert verify_receipt(plat.settings, "R-lease")["ok"] and rq.lease(plat.engine, spec.name) is None
