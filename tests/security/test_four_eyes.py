"""Four-eyes promotion (``deploy.approval: required``): the requester may not approve, silence holds.

The deploy DAG runs with ``dag.test()``; the approval is answered through Airflow's own HITL response handler
(the function behind ``PATCH …/hitlDetails``) on the same metadata DB, as the Required Actions page does.
"""

from __future__ import annotations

import threading
import time

import pytest


@pytest.fixture
def four_eyes(spec):
    deploy = spec.deploy.model_copy(update={"approval": "required", "approval_timeout_hours": 1})
    return spec.model_copy(update={"deploy": deploy})


class _User:
    def __init__(self, name: str) -> None:
        self.name = name

    def get_id(self) -> str:
        return self.name

    def get_name(self) -> str:
        return self.name


def _answer_when_asked(dag_id: str, who: str, option: str, timeout: float = 120) -> None:
    """Wait for the approval task to park, then answer it as ``who`` through Airflow's HITL response handler."""
    from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
    from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    deadline = time.time() + timeout
    while time.time() < deadline:
        with create_session() as session:
            ti = session.scalar(
                select(TaskInstance).where(
                    TaskInstance.dag_id == dag_id,
                    TaskInstance.task_id == "approve",
                    TaskInstance.state == TaskInstanceState.AWAITING_INPUT,
                )
            )
            if ti is not None:
                update_hitl_detail(
                    dag_id=dag_id,
                    dag_run_id=ti.run_id,
                    task_id="approve",
                    update_hitl_detail_payload=UpdateHITLDetailPayload(chosen_options=[option]),
                    user=_User(who),
                    session=session,
                )
                return
        time.sleep(0.5)
    raise AssertionError("the approval task never asked")


def _deploy_with_answer(spec, who, option):
    from ativo.airflow.dags.deploy import build_deploy_dag

    dag = build_deploy_dag(spec)
    answering = threading.Thread(target=_answer_when_asked, args=(dag.dag_id, who, option), daemon=True)
    answering.start()
    run = dag.test()
    answering.join(5)
    return run, {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


@pytest.fixture
def candidate(settings, four_eyes, small_boosters, tmp_path):
    """A gated version, the challenger, and no champion yet."""
    from ativo.model.registry import set_challenger
    from tests.support.harness import register_booster

    version = register_booster(settings, four_eyes, small_boosters["good"], artifact_root=tmp_path / "art")
    set_challenger(four_eyes, settings, version)
    return version


@pytest.fixture
def live_server(settings, candidate, monkeypatch):
    """A live server the deploy run waits on (the platform's ``ATIVO_SERVE_URLS``)."""
    from tests.support.harness import start_server

    server = start_server(settings, args=("--refresh-s", "0.2"), wait_for=None)
    monkeypatch.setenv("ATIVO_SERVE_URLS", server.url)
    yield server
    server.stop()


def test_the_requester_approving_their_own_deployment_is_refused_and_holds(
    airflow_db, settings, four_eyes, candidate, live_server
):
    from ativo import audit
    from ativo.model.registry import aliases
    from ativo.store.db import get_engine

    run, states = _deploy_with_answer(four_eyes, "dag_test", "Approve")  # dag.test() triggers as "dag_test"
    assert str(run.state) == "failed", states
    assert states["approve"] == "failed" and states["start"] == "upstream_failed", states
    assert aliases(four_eyes, settings).get("champion") is None  # held: nothing serves it
    [refusal] = audit.entries(get_engine(settings.db_url), kind="approval_refused")
    assert refusal["actor"] == "airflow:dag_test" and "four eyes" in refusal["payload"]["why"]


def test_a_rejection_holds_the_version(airflow_db, settings, four_eyes, candidate, live_server):
    from ativo.model.registry import aliases

    run, states = _deploy_with_answer(four_eyes, "risk-officer", "Reject")
    assert str(run.state) == "failed" and states["start"] == "skipped", states
    assert aliases(four_eyes, settings).get("champion") is None


def test_another_persons_approval_promotes_and_is_signed_and_on_the_card(
    airflow_db, settings, four_eyes, candidate, live_server
):
    from mlflow import MlflowClient

    from ativo.model.registry import aliases, history

    run, states = _deploy_with_answer(four_eyes, "risk-officer", "Approve")
    assert str(run.state) == "success", states
    assert aliases(four_eyes, settings)["champion"] == candidate
    [rec] = [r for r in history(four_eyes, settings) if r["action"] == "promote"]
    assert rec["valid"] and rec["actor"] == "airflow:dag_test"
    assert rec["approval"]["approved_by"] == "airflow:risk-officer"
    assert rec["approval"]["requested_by"] == "airflow:dag_test"
    mv = MlflowClient(settings.mlflow_tracking_uri).get_model_version(four_eyes.registered_model_name, candidate)
    assert "risk-officer" in mv.tags["ativo.approval"] and "Approved by airflow:risk-officer" in mv.description


def test_no_other_path_skips_the_approval(settings, four_eyes, candidate):
    """Neither ``ativo promote`` / the page (an op) nor a forged approve XCom puts a version live without it."""
    from ativo.deploy.approvals import ApprovalRefused, approved
    from ativo.deploy.promotion import DeployRefused, promote, start_trial
    from ativo.model.registry import aliases

    with pytest.raises(DeployRefused, match="four eyes"):
        promote(four_eyes, settings, candidate, reason="I am an op", actor="key:mallory")
    with pytest.raises(DeployRefused, match="four eyes"):
        start_trial(four_eyes, settings, candidate, percent=100, actor="key:mallory")
    assert aliases(four_eyes, settings).get("champion") is None
    # start reads the approval the platform signed when Airflow handed the answer over, not the approve task's XCom
    with pytest.raises(ApprovalRefused, match="no approval signed"):
        approved(settings, four_eyes, candidate, "manual__forged")


def test_silence_holds_the_version_and_an_analyst_cannot_answer(four_eyes, tmp_path, monkeypatch):
    """The approval step answers "Reject" when its time is up; answering it is a write on the deploy DAG (op)."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    from ativo.airflow.auth import AtivoAuthManager
    from ativo.airflow.dags.deploy import build_deploy_dag
    from ativo.deploy.approvals import ApprovalRefused, accept

    dag = build_deploy_dag(four_eyes)
    approve = dag.get_task("approve")
    assert approve.defaults == ["Reject"] and approve.response_timeout.total_seconds() == 3600
    assert "approve" in dag.get_task("start").upstream_task_ids
    monkeypatch.setenv("ATIVO_HOME", str(tmp_path))
    from ativo.config import load_settings

    settings = load_settings()
    for answer in (None, {"chosen_options": ["Reject"], "responded_by_user": {"id": "x", "name": "x"}}):
        with pytest.raises(ApprovalRefused, match="held"):
            accept(settings, four_eyes, "3", answer, "airflow:operator")
    manager = AtivoAuthManager()
    assert not manager.is_authorized_dag(
        method="PUT",
        user=SimpleAuthManagerUser(username="analyst", role="user"),
        access_entity=DagAccessEntity.HITL_DETAIL,
        details=DagDetails(id=dag.dag_id),
    )
