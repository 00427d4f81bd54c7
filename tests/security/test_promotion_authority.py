"""Only gated models serve, whatever path asks, and the registry is not trusted.

A hostile user who reaches MLflow moves an alias, raises the canary share, deletes the champion's alias, swaps the
decision policy or rewrites the dataset tag; a user-role login triggers the deploy DAG with a rejected version; a
forged promotion record is written straight into the platform DB. Each time serving stays on the routing the
platform signed, with zero failed requests and one page, and the refusal or the tampering is on record.
"""

from __future__ import annotations

import json
import time

import pytest


@pytest.fixture(scope="module")
def boosters(small_boosters):
    return small_boosters


@pytest.fixture
def platform(settings, spec, boosters, tmp_path, webhook, monkeypatch):
    """Champion v1 and canary v2 at 20 % (both gated), v3 rejected by its gates, v4 never gated; an API key."""
    from ativo.deploy.promotion import promote, start_trial
    from ativo.serve.keys import create_key
    from tests.support.harness import register_booster

    url, pages = webhook
    monkeypatch.setenv("AIRFLOW_CONN_ATIVO_ONCALL", json.dumps({"conn_type": "http", "extra": {"webhook_url": url}}))
    art = tmp_path / "art"
    data = {"ativo.dataset_version": f"{spec.name}-v0001"}
    v1 = register_booster(settings, spec, boosters["good"], artifact_root=art, tags=data)
    v2 = register_booster(settings, spec, boosters["good2"], artifact_root=art, tags=data)
    v3 = register_booster(settings, spec, boosters["shifted"], artifact_root=art, gated=False)
    promote(spec, settings, v1, reason="test champion", actor="test")
    start_trial(spec, settings, v2, percent=20, actor="test")
    key = create_key(settings.home / "serve" / "api_keys.json", "app", ("predict",))
    return {"v1": v1, "v2": v2, "v3": v3, "key": key, "pages": pages, "art": art}


@pytest.fixture
def client(settings, spec, platform):
    from starlette.testclient import TestClient

    from ativo.api.app import ServeConfig, build_app, create_service
    from ativo.waiting import wait_until

    service = create_service(spec, settings, ServeConfig(refresh_s=0.1, watch_s=0.1, flush_s=60))
    with TestClient(build_app(service)) as c:
        c.headers["Authorization"] = f"Bearer {platform['key']}"
        c.service = service
        wait_until(
            lambda: service.live.routing.versions() == {"champion": platform["v1"], "canary": platform["v2"]},
            20,
            0.1,
            "the signed routing loaded",
        )
        yield c


def _answers(client, rows):
    got = client.post(
        "/predict", json={"rows": [{"features": rows[i % len(rows)], "key": f"cust-{i}"} for i in range(500)]}
    )
    assert got.status_code == 200, got.text
    return [(p["version"], p["route"], p["decision"]) for p in got.json()["predictions"]]


def _tamper(kind, settings, spec, platform):
    from mlflow import MlflowClient

    client = MlflowClient(settings.mlflow_tracking_uri)
    name, v1 = spec.registered_model_name, platform["v1"]
    if kind == "alias moved":
        client.set_registered_model_alias(name, "champion", platform["v3"])  # the rejected version
    elif kind == "canary tag":
        client.set_registered_model_tag(name, "ativo.canary_percent", "100")
    elif kind == "alias deleted":
        client.delete_registered_model_alias(name, "champion")
    elif kind == "policy swapped":  # a policy that approves everyone, logged on the champion's run
        run_id = client.get_model_version(name, v1).tags["ativo.mlflow_run_id"]
        path = platform["art"].parent / "evil"
        path.mkdir()
        (path / "decision_policy.json").write_text(json.dumps({"attribute": "sex", "thresholds": {}, "default": 0.0}))
        client.log_artifacts(run_id, str(path), artifact_path="evil")
        client.set_model_version_tag(name, v1, "ativo.decision_policy_uri", f"runs:/{run_id}/evil/decision_policy.json")
    elif kind == "dataset tag rewritten":
        client.set_model_version_tag(name, v1, "ativo.dataset_version", "nothing-to-see")
    elif kind == "forged record":  # written straight into the platform DB, without the platform key
        from sqlalchemy import insert

        from ativo.model.registry import current
        from ativo.store.db import get_engine, promotion_records, utcnow

        doc = {**current(spec, settings).record, "action": "promote", "actor": "mallory"}
        doc["routing"] = {"champion": {**doc["routing"]["champion"], "version": platform["v3"]}}
        with get_engine(settings.db_url).begin() as conn:
            conn.execute(
                insert(promotion_records).values(
                    spec=spec.name,
                    model=name,
                    doc=doc,
                    key_id="x" * 16,
                    prev_signature=current(spec, settings).signature,
                    signature="f" * 64,
                    at=utcnow(),
                )
            )
    else:
        raise AssertionError(kind)


KINDS = ["alias moved", "canary tag", "alias deleted", "policy swapped", "dataset tag rewritten", "forged record"]


@pytest.mark.parametrize("kind", KINDS)
def test_registry_tampering_leaves_serving_on_its_signed_routing_and_pages_once(
    kind, settings, spec, split_rows, platform, client
):
    from ativo.waiting import wait_until

    before = _answers(client, split_rows)
    assert {v for v, r, _ in before if r == "canary"} == {platform["v2"]}
    _tamper(kind, settings, spec, platform)
    wait_until(lambda: client.service.live.tampering, 20, 0.1, f"the server to notice: {kind}")
    after = _answers(client, split_rows)
    time.sleep(1.0)  # ten more refreshes: the same difference pages once
    assert after == before  # the same version, route and decision for every caller; no request failed
    assert client.service.live.routing.versions() == {"champion": platform["v1"], "canary": platform["v2"]}
    pages = [p for p in platform["pages"] if p.get("ativo", {}).get("kind") == "registry_tampering"]
    assert len(pages) == 1, pages
    assert pages[0]["text"].startswith("registry tampering:")
    assert pages[0]["ativo"]["runbook_url"].endswith("/registry-tampering")  # on-call is told what to do
    health = client.get(f"/models/{spec.name}/health").json()
    assert health["versions"] == {"champion": platform["v1"], "canary": platform["v2"]}


def test_erasure_finds_a_model_whose_dataset_tag_was_rewritten(settings, spec, platform):
    from mlflow import MlflowClient

    from ativo.erasure.models import affected_versions

    MlflowClient(settings.mlflow_tracking_uri).set_model_version_tag(
        spec.registered_model_name, platform["v1"], "ativo.dataset_version", "nothing-to-see"
    )
    found = {r["version"]: r for r in affected_versions(spec, settings, [f"{spec.name}-v0001"])}
    assert set(found) == {platform["v1"], platform["v2"]}
    assert found[platform["v1"]]["aliases"] == ["champion"]


@pytest.mark.parametrize("who", ["rejected", "ungated"])
def test_no_path_puts_a_rejected_or_ungated_version_on_live_traffic(who, settings, spec, boosters, platform):
    from ativo.deploy.promotion import DeployRefused, promote, start_trial
    from ativo.model.registry import aliases, history
    from tests.support.harness import register_booster

    version = (
        platform["v3"]
        if who == "rejected"
        else register_booster(settings, spec, boosters["broken"], artifact_root=platform["art"], gated=None)
    )
    before = aliases(spec, settings)
    with pytest.raises(DeployRefused) as err:
        promote(spec, settings, version, reason="I say so", actor="mallory")
    assert (
        ("rejected by its gates (performance)" in str(err.value))
        if who == "rejected"
        else "no gate record" in str(err.value)
    ), str(err.value)
    with pytest.raises(DeployRefused):
        start_trial(spec, settings, version, percent=100, actor="mallory")
    assert aliases(spec, settings) == before
    assert all(r["actor"] != "mallory" for r in history(spec, settings))


def test_a_move_prepared_on_a_stale_view_is_refused_not_applied(settings, spec, platform):
    """Two movers at once: the one that read what serves before the other moved changes nothing."""
    from ativo.deploy.promotion import DeployRefused, move_aliases, rollback
    from ativo.model.registry import aliases

    stale = aliases(spec, settings)  # champion v1, canary v2
    rollback(spec, settings, reason="the canary ends meanwhile", actor="test")
    with pytest.raises(DeployRefused, match="changed while this move was prepared"):
        move_aliases(
            spec,
            settings,
            "promote",
            platform["v2"],
            {"champion": platform["v2"], "previous": "1", "canary": None},
            reason="stale",
            actor="test",
            expected=stale,
        )
    assert aliases(spec, settings) == {"champion": platform["v1"]}


def test_the_gate_record_is_for_the_file_and_the_spec(settings, spec, platform):
    """A version gated under another spec hash must be gated again before it serves."""
    from ativo.deploy.promotion import DeployRefused, rollback

    changed = spec.model_copy(update={"split": spec.split.model_copy(update={"seed": spec.split.seed + 1})})
    from ativo.deploy.promotion import promote

    with pytest.raises(DeployRefused, match="under another version of spec"):  # its split moved: new test rows
        promote(changed, settings, platform["v2"], reason="spec changed since the gates", actor="test")
    rollback(spec, settings, reason="end the canary", actor="test")  # taking an alias away needs no gate record


def test_an_analyst_may_not_trigger_deploy_or_train(tmp_path, monkeypatch):
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    from ativo import audit
    from ativo.airflow.auth import AtivoAuthManager
    from ativo.store.db import get_engine

    monkeypatch.setenv("ATIVO_HOME", str(tmp_path))
    manager = AtivoAuthManager()
    analyst = SimpleAuthManagerUser(username="analyst", role="user")
    operator = SimpleAuthManagerUser(username="operator", role="op")
    for dag_id in ("compas_recidivism__deploy", "compas_recidivism__train"):
        for method in ("POST", "PUT", "DELETE"):
            assert not manager.is_authorized_dag(
                method=method, user=analyst, access_entity=DagAccessEntity.RUN, details=DagDetails(id=dag_id)
            )
        assert manager.is_authorized_dag(
            method="POST", user=operator, access_entity=DagAccessEntity.RUN, details=DagDetails(id=dag_id)
        )
        assert manager.is_authorized_dag(method="GET", user=analyst, details=DagDetails(id=dag_id))
    # a DAG id of the caller's naming is never written as it is (a subject id in it would wedge its erasure)
    assert not manager.is_authorized_dag(
        method="POST",
        user=analyst,
        access_entity=DagAccessEntity.RUN,
        details=DagDetails(id="cust-0989f90e753b3d80__train"),
    )
    refused = audit.entries(get_engine(f"sqlite:///{tmp_path / 'ativo.db'}"), kind="operation_refused")
    assert len(refused) == 7 and {r["actor"] for r in refused} == {"analyst"}
    assert "cust-0989f90e753b3d80" not in json.dumps(refused, default=str)


def test_the_deploy_dag_refuses_a_rejected_version_named_in_its_conf(airflow_db, settings, spec, platform):
    from ativo import audit
    from ativo.airflow.dags.deploy import build_deploy_dag
    from ativo.model.registry import aliases
    from ativo.store.db import get_engine

    before = aliases(spec, settings)
    run = build_deploy_dag(spec).test(run_conf={"version": platform["v3"]})
    assert str(run.state) == "failed"
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert states["infra_check"] == "failed" and states["start"] != "success", states
    assert aliases(spec, settings) == before  # nothing moved: champion v1, canary v2
    [refusal] = audit.entries(get_engine(settings.db_url), kind="deploy_refused")
    assert refusal["payload"]["version"] == platform["v3"] and refusal["payload"]["failed_gates"] == ["performance"]
    assert refusal["actor"] == "airflow:dag_test" and refusal["payload"]["requested"] is True


@pytest.fixture(scope="module")
def split_rows(spec, adult_split):
    from ativo.evaluate.suite import request_rows

    return request_rows(spec, adult_split.test, 50)


def test_an_upgraded_platform_adopts_mlflows_routing_once_by_an_op(settings, spec, boosters, tmp_path):
    """Before signed records, MLflow's aliases were the routing: an op signs them once; never again after."""
    from mlflow import MlflowClient

    from ativo.model.registry import PromotionRefused, adopt_routing, current, history
    from tests.support.harness import register_booster

    v1 = register_booster(settings, spec, boosters["good"], artifact_root=tmp_path / "art", gated=None)
    client = MlflowClient(settings.mlflow_tracking_uri)
    client.set_registered_model_alias(spec.registered_model_name, "champion", v1)  # how the old platform routed
    assert current(spec, settings).routes == {}  # nothing signed: a server routes nothing (and pages the difference)
    adopt_routing(spec, settings, actor="key:ops", reason="upgrade")
    routed = current(spec, settings).routes
    assert (
        routed["champion"].version == v1
        and routed["champion"].model_sha256
        == client.get_model_version(spec.registered_model_name, v1).tags["ativo.model_sha256"]
    )
    assert [r["actor"] for r in history(spec, settings)] == ["key:ops"]
    with pytest.raises(PromotionRefused, match="signed promotion records already"):
        adopt_routing(spec, settings, actor="key:mallory", reason="again")


def test_a_version_that_is_not_a_number_is_refused_before_anything_records_it(settings, spec):
    """A deploy run's ``version`` is free text to Airflow: a subject id in it must reach neither the run nor the audit
    log (it would wedge that subject's erasure)."""
    import copy

    from ativo import audit
    from ativo.airflow.dags.deploy import build_deploy_dag
    from ativo.deploy.promotion import DeployRefused
    from ativo.deploy.steps import authorized_or_refuse
    from ativo.store.db import get_engine

    hostile = "cust-0989f90e753b3d80"
    params = copy.deepcopy(build_deploy_dag(spec).params)
    params["version"] = "3"
    params.validate()  # a version number is taken
    with pytest.raises(Exception, match="does not match"):  # Airflow refuses the trigger's conf
        params["version"] = hostile
        params.validate()
    with pytest.raises(DeployRefused, match="digits only") as err:
        authorized_or_refuse(spec, settings, hostile, actor="airflow:operator", requested=True)
    assert hostile not in str(err.value)
    assert hostile not in json.dumps(audit.entries(get_engine(settings.db_url)), default=str)
