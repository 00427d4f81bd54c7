"""The Ativo page on Airflow's real api-server app (create_app, the plugin mounted as Airflow mounts it).

Behind Airflow's login; actions need the op role and are audited; reports open over HTTP from the object store only;
runbooks render for every alert.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.metrics_text import samples


@pytest.fixture
def airflow_app(airflow_db, ativo_home, monkeypatch, tmp_path):
    """Airflow's api-server app with Ativo's auth manager and users, and a token per user."""
    from ativo_dev.supervisor import PROJECT_ROOT

    passwords = {"admin": "a-pass", "operator": "o-pass", "analyst": "u-pass"}
    (tmp_path / "passwords.json").write_text(json.dumps(passwords))
    monkeypatch.setenv("AIRFLOW__CORE__AUTH_MANAGER", "ativo.airflow.auth.AtivoAuthManager")
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin,operator:op,analyst:user")
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(tmp_path / "passwords.json"))
    monkeypatch.setenv("AIRFLOW__CORE__PLUGINS_FOLDER", str(PROJECT_ROOT / "plugins"))
    from airflow.api_fastapi.app import create_app, purge_cached_app
    from fastapi.testclient import TestClient

    purge_cached_app()
    client = TestClient(create_app())

    def token(user: str) -> dict[str, str]:
        resp = client.post("/auth/token", json={"username": user, "password": passwords[user]})
        assert resp.status_code == 201, resp.text
        return {"Authorization": f"Bearer {resp.json()['access_token']}"}

    yield client, token
    purge_cached_app()


def test_the_page_needs_a_login_and_shows_every_section(airflow_app, settings):
    from ativo.compute.budget import Ledger
    from ativo.store.db import get_engine

    client, token = airflow_app
    Ledger(get_engine(settings.db_url), settings.prices).set_budget("risk-team", 40.0)
    anonymous = client.get("/ativo/", headers={"accept": "text/html"}, follow_redirects=False)
    assert anonymous.status_code == 303 and "login" in anonymous.headers["location"]
    assert client.get("/ativo/api/overview").status_code == 401

    page = client.get("/ativo/", headers=token("analyst"))
    assert page.status_code == 200
    for heading in (
        "Spend against budget",
        "GPU leases",
        "Live versions",
        "Lineage of a decision",
        "Monitor",
        "Quarantined batches",
        "Erasure requests",
    ):
        assert f">{heading}</h2>" in page.text
    assert "risk-team" in page.text and "40.00" in page.text
    assert "needs the op role" in page.text  # an analyst sees the actions disabled, saying why
    assert "could not read" not in page.text
    order = ["Status", "Live versions", "Deployments", "Monitor", "Quarantined batches", "Erasure requests"]
    at = [page.text.index(f">{h}</h2>") for h in [*order, "Spend against budget"]]
    assert at == sorted(at)  # the status strip first, the budgets after the on-call sections
    assert '<meta http-equiv="refresh" content="60">' in page.text and "as of <time" in page.text
    assert "file://" not in page.text


def test_actions_need_the_op_role_name_bad_fields_and_are_audited(airflow_app, settings):
    from ativo import audit
    from ativo.compute.budget import Ledger
    from ativo.store.db import get_engine

    client, token = airflow_app
    engine = get_engine(settings.db_url)
    ledger = Ledger(engine, settings.prices)
    ledger.set_budget("risk-team", 40.0, erasure_reserve_usd=5.0, policy="defer")
    body = {
        "content": "team=risk-team&limit_usd=60&reason=quarter+end",
        "headers": {"content-type": "application/x-www-form-urlencoded", "accept": "application/json"},
    }

    refused = client.post(
        "/ativo/actions/budget", content=body["content"], headers={**body["headers"], **token("analyst")}
    )
    assert refused.status_code == 403 and "op role" in refused.json()["detail"]
    assert ledger.status("risk-team")["limit_usd"] == 40.0
    assert [r["actor"] for r in audit.entries(engine, kind="page_refused")] == ["analyst"]

    bad = client.post(
        "/ativo/actions/budget",
        content="team=risk-team&limit_usd=lots",
        headers={**body["headers"], **token("operator")},
    )
    assert bad.status_code == 422 and "limit_usd" in bad.json()["notice"]
    assert ledger.status("risk-team")["limit_usd"] == 40.0  # nothing changed

    cross_site = client.post(
        "/ativo/actions/budget",
        content=body["content"],
        headers={**body["headers"], **token("operator"), "origin": "http://evil.example"},
    )
    assert cross_site.status_code == 403

    done = client.post(
        "/ativo/actions/budget", content=body["content"], headers={**body["headers"], **token("operator")}
    )
    assert done.status_code == 200, done.text
    after = ledger.status("risk-team")
    assert (after["limit_usd"], after["erasure_reserve_usd"], after["policy"]) == (60.0, 5.0, "defer")
    [row] = audit.entries(engine, kind="page_budget")
    assert row["actor"] == "operator" and row["payload"]["limit_usd_before"] == 40.0
    assert row["payload"]["reason"] == "quarter end"
    assert audit.verify_chain(engine)["ok"]

    unknown = client.post(
        "/ativo/actions/promote", content="spec=nope&version=3", headers={**body["headers"], **token("operator")}
    )
    assert unknown.status_code == 422 and "spec: unknown spec 'nope'" in unknown.json()["notice"]


def test_reports_open_over_http_from_the_store_only(airflow_app, settings):
    from ativo.store.objects import open_store

    client, token = airflow_app
    uri = open_store(settings).put_bytes("quarantine/adult_income/2026-11-30/abc/report.json", b'{"ok": false}')
    ref = "store/quarantine/adult_income/2026-11-30/abc/report.json"
    opened = client.get(f"/ativo/reports/{ref}", params={"format": "json"}, headers=token("analyst"))
    assert opened.status_code == 200 and opened.json() == {"ok": False}
    assert opened.headers["content-security-policy"] == "sandbox"
    shown = client.get(f"/ativo/reports/{ref}", headers=token("analyst"))
    assert shown.status_code == 200 and "Validation report" in shown.text and "file://" not in shown.text
    old = client.get("/ativo/files", params={"uri": uri}, headers=token("analyst"), follow_redirects=False)
    assert old.status_code == 307 and old.headers["location"] == f"reports/{ref}"
    store = open_store(settings)
    batch = store.put_bytes("quarantine/adult_income/2026-11-30/abc/batch.csv", b"customer_id,age\nc-1,140\n")
    landing = store.put_bytes("landing/adult_income/2026-11-30.csv", b"customer_id,age\nc-1,40\n")
    root = uri.rsplit("/quarantine", 1)[0]
    for outside in (
        "file:///etc/passwd",
        root + "/../../etc/passwd",
        batch,
        landing,
        root + "/",
        "runs:/0123abcd/../../../../etc/passwd",
        "runs:/0123abcd/gates/../../../etc/passwd",
        "runs:/0123abcd/model/model.ubj",
    ):  # raw rows, other files, or paths out of a run: never
        answer = client.get("/ativo/files", params={"uri": outside}, headers=token("analyst"), follow_redirects=False)
        assert answer.status_code == 410, outside
    for ref_outside in (
        "store/../../etc/passwd",
        "store/quarantine/adult_income/2026-11-30/abc/batch.csv",
        "store/landing/adult_income/2026-11-30.csv",
        "run/0123abcd/model/model.ubj",
        "store/quarantine/other/2026-11-30/abc/report.json",
    ):
        answer = client.get(f"/ativo/reports/{ref_outside}", headers=token("analyst"))
        assert answer.status_code == 404 and "customer_id" not in answer.text, ref_outside
    assert client.get(f"/ativo/reports/{ref}").status_code == 401


def test_a_dataset_version_opens_by_its_tag_with_its_days_and_never_a_path(airflow_app, settings):
    import datetime as dt

    from sqlalchemy import insert

    from ativo.store.db import dataset_versions, get_engine

    client, token = airflow_app
    with get_engine(settings.db_url).begin() as conn:
        for n, days in ((1, ["2026-11-29"]), (2, ["2026-11-29", "2026-11-30"])):
            conn.execute(
                insert(dataset_versions).values(
                    spec="adult_income",
                    version=n,
                    tag=f"adult_income-v{n:04d}",
                    git_rev=f"{n}" * 40,
                    manifest_hash="ab" * 16,
                    rows=1000 * n,
                    partitions=days,
                    created_at=dt.datetime.now(dt.UTC),
                )
            )
    first = client.get("/ativo/datasets/adult_income/adult_income-v0001", headers=token("analyst"))
    assert first.status_code == 200 and "Dataset version adult_income-v0001" in first.text
    assert "2026-11-29" in first.text and "1000" in first.text and "the latest" not in first.text
    assert "No model version was trained on this dataset version yet." in first.text
    latest = client.get("/ativo/datasets/adult_income/adult_income-v0002", headers=token("analyst")).text
    assert "(the latest)" in latest and "2 (2026-11-29 … 2026-11-30)" in latest and "file://" not in latest
    for path in ("adult_income/adult_income-v0003", "compas_recidivism/adult_income-v0001", "nope/adult_income-v0001"):
        assert client.get(f"/ativo/datasets/{path}", headers=token("analyst")).status_code == 404, path
    assert client.get("/ativo/datasets/adult_income/adult_income-v0001").status_code == 401
    page = client.get("/ativo/", headers=token("analyst")).text  # Live versions links the latest one
    assert 'href="datasets/adult_income/adult_income-v0002"' in page


def test_run_artifacts_open_only_under_gates_and_monitor(airflow_app, settings):
    import mlflow

    client, token = airflow_app
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    with mlflow.start_run() as run:
        mlflow.log_text("<h1>Model card</h1>", "gates/model_card.html")
        artifacts = Path(mlflow.get_artifact_uri().removeprefix("file://"))
    (artifacts.parent / "secret.txt").write_text("the subject pepper")  # beside the run's artifacts, not in them
    rid = run.info.run_id
    card = client.get(f"/ativo/reports/run/{rid}/gates/model_card.html", headers=token("analyst"))
    assert card.status_code == 200 and "Model card" in card.text
    for sneaky in (f"run/{rid}/gates/%2e%2e/%2e%2e/secret.txt", f"run/{rid}/..%2Fsecret.txt", f"run/{rid}/secret.txt"):
        answer = client.get(f"/ativo/reports/{sneaky}", headers=token("analyst"))
        assert answer.status_code == 404 and "pepper" not in answer.text, sneaky


def test_every_runbook_renders_and_the_metrics_need_no_login(airflow_app):
    from ativo import runbooks

    client, _ = airflow_app
    assert len(runbooks.slugs()) >= 17
    for slug in runbooks.slugs():
        page = client.get(f"/ativo/runbooks/{slug}")
        assert page.status_code == 200, slug
        for section in ("What it means", "How to look", "How to fix", "How to re-run"):
            assert f">{section}</h2>" in page.text, (slug, section)
    index = client.get("/ativo/runbooks/")
    assert index.status_code == 200 and 'href="task-failed"' in index.text
    assert client.get("/ativo/runbooks/no-such-page").status_code == 404
    with pytest.raises(KeyError):  # a name that would leave the folder is refused, though that file exists
        runbooks.page("../../README")
    metrics = client.get("/ativo/metrics")
    assert metrics.status_code == 200
    assert ("ativo_erasure_overdue_requests", frozenset({"model": "adult_income"}.items())) in samples(metrics.text)


def test_a_link_cannot_make_the_page_say_an_action_was_done(airflow_app, settings):
    from urllib.parse import parse_qs, urlsplit

    from ativo.compute.budget import Ledger
    from ativo.store.db import get_engine

    client, token = airflow_app
    forged = client.get("/ativo/?notice=promote%20done%3A%20version%207%20is%20champion&ok=1", headers=token("analyst"))
    assert forged.status_code == 200 and "version 7 is champion" not in forged.text

    Ledger(get_engine(settings.db_url), settings.prices).set_budget("risk-team", 40.0)
    done = client.post(
        "/ativo/actions/budget",
        content="team=risk-team&limit_usd=50&erasure_reserve_usd=5&policy=fail&reason=more",
        headers={
            "content-type": "application/x-www-form-urlencoded",
            "accept": "text/html",
            **token("operator"),
        },
        follow_redirects=False,
    )
    assert done.status_code == 303
    query = urlsplit(done.headers["location"]).query
    notice = parse_qs(query)["notice"][0]
    assert notice.startswith("budget done: ") and "{" not in notice  # readable, not a Python dict
    shown = client.get(f"/ativo/?{query}", headers=token("operator"))
    assert notice.split(":")[0] in shown.text and "budget done" in shown.text
    other = client.get(f"/ativo/?{query}", headers=token("analyst"))  # signed for the operator, not for others
    assert "budget done" not in other.text
    tampered = client.get(f"/ativo/?{query.replace('ok=1', 'ok=0')}", headers=token("operator"))
    assert "budget done" not in tampered.text
