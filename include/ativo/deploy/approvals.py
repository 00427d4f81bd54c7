"""Four-eyes promotion: who approved a version, and whether that approval counts.

A spec with ``deploy.approval: required`` gets an approval step in its deploy DAG after the infra check (Airflow's
human-in-the-loop :class:`ApprovalOperator`; the task waits without holding a worker). Airflow lets anyone with
access answer, including the person who triggered the run, so separation of duties is decided here: the approver
must be another identity than the requester, else the approval is refused (audited) and the version is held. A
rejection or a timeout holds the version too: the operator's default on timeout is "Reject", never "Approve".
The approval that counts goes into the signed promotion record (:mod:`ativo.model.registry`) and onto the version's
model card.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ativo.deploy.promotion import DeployError
from ativo.store import prefixes

if TYPE_CHECKING:
    from ativo.config import Settings
    from ativo.spec import ModelSpec

APPROVE = "Approve"


class ApprovalRefused(DeployError):
    """The approval does not count: no approval, a rejection, a timeout, or the requester approving their own run."""


def _identity(user: Any) -> str:
    """An Airflow user as the records name it: ``airflow:<name>`` (HITL hands ``{"id", "name"}``)."""
    if isinstance(user, dict):
        user = user.get("name") or user.get("id")
    return f"airflow:{user}" if user else "unknown"


def body(spec: ModelSpec, version: str, gated: dict[str, Any], requester: str, airflow_url: str) -> str:
    """The approval request's Markdown body: the version, who asks, and links to its model card and gate report."""
    from ativo.paging import stored_link

    card = stored_link(gated.get("model_card_uri"), airflow_url) or gated.get("model_card_uri")
    report = stored_link(gated.get("gate_report_uri"), airflow_url) or gated.get("gate_report_uri")
    return (
        f"**{spec.registered_model_name} version {version}** passed every gate and the infra check.\n\n"
        f"- requested by: `{requester}` (you may not approve your own request)\n"
        f"- trained on: `{gated.get('dataset_version')}`\n"
        f"- model file sha256: `{str(gated.get('model_sha256'))[:16]}…`\n"
        f"- model card: {card}\n- gate report: {report}\n\n"
        f"Approve to put it on {'shadow' if spec.deploy.shadow else f'canary at {spec.deploy.canary_percent:g} %'}"
        f"; no answer within {spec.deploy.approval_timeout_hours:g} h holds it."
    )


def accept(
    settings: Settings, spec: ModelSpec, version: str, answer: dict[str, Any] | None, requester: str
) -> dict[str, Any]:
    """The approval that goes into the promotion record, or :class:`ApprovalRefused` (audited) when it does not count.

    Args:
        settings: the platform (its audit log).
        spec: the model spec.
        version: the version approved.
        answer: what the approval task returned (``chosen_options``, ``responded_by_user``, ``responded_at``);
            None when it did not answer (a timeout, or a rejection that skipped the step).
        requester: who triggered the deploy run (``airflow:<user>``, or the challenger event).
    """
    from ativo.audit import append
    from ativo.store.db import get_engine

    chosen = list((answer or {}).get("chosen_options") or [])
    approver = _identity((answer or {}).get("responded_by_user"))
    why = None
    if chosen != [APPROVE]:
        why = f"version {version} was not approved ({', '.join(chosen) or 'no answer'}): it is held"
    elif approver == requester:
        why = (
            f"version {version}: {approver} triggered this deployment and may not approve it too (four eyes); "
            "another person with the op role must approve"
        )
    if why:
        append(
            get_engine(settings.db_url),
            "approval_refused",
            approver,
            spec.name,
            {"version": str(version), "requester": requester, "chosen": chosen, "why": why},
        )
        raise ApprovalRefused(why)
    return {
        "approved_by": approver,
        "requested_by": requester,
        "at": str((answer or {}).get("responded_at")),
        "version": str(version),
    }


def record(
    settings: Settings, spec: ModelSpec, version: str, answer: dict[str, Any] | None, requester: str, dag_run_id: str
) -> dict[str, Any]:
    """Judge an answer (:func:`accept`) and sign the approval for this deploy run; returns it.

    Called where Airflow hands the answer over (the approval task's resumption), from Airflow's own record of who
    answered, never from an XCom (which a task or an op could rewrite).
    """
    from ativo.model.registry import record_approval

    approval = {**accept(settings, spec, version, answer, requester), "dag_run_id": dag_run_id}
    record_approval(settings, spec, version, approval)
    return approval


def approved(settings: Settings, spec: ModelSpec, version: str, dag_run_id: str) -> dict[str, Any]:
    """The signed approval of ``version`` for this deploy run.

    Raises:
        ApprovalRefused: there is none (no answer, a rejection, a refused self-approval, or a forged XCom).
    """
    from ativo.model.registry import version_record

    found = version_record(settings, spec, version, "approved", where={"dag_run_id": dag_run_id})
    if found is None:
        raise ApprovalRefused(
            f"version {version} has no approval signed for deploy run {dag_run_id}: it is held "
            "(four eyes: another person must approve it in the run's approve task)"
        )
    return found


def note_on_card(
    spec: ModelSpec, settings: Settings, version: str, approval: dict[str, Any], gated: dict[str, Any]
) -> None:
    """Put the approval on the version: its model card (rendered again with it), a tag and its description."""
    import json
    import tempfile
    from pathlib import Path

    from ativo.evaluate.card import render_card
    from ativo.model.artifact import read_artifact_json
    from ativo.model.client import mlflow_client
    from ativo.model.registry import describe_version, tag_version

    client = mlflow_client(settings)
    name = spec.registered_model_name
    tag_version(spec, settings, version, {"ativo.approval": json.dumps(approval)})
    run_id = client.get_model_version(name, str(version)).run_id
    if gated.get("gate_report_uri") and run_id:
        report = read_artifact_json(settings.mlflow_tracking_uri, str(gated["gate_report_uri"]))
        report["approval"] = approval
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "model_card.html").write_text(render_card(spec, report), encoding="utf-8")
            client.log_artifact(run_id, str(Path(tmp) / "model_card.html"), artifact_path=prefixes.RUN_GATES)
    line = f" Approved by {approval['approved_by']} (requested by {approval['requested_by']}) at {approval['at']}."
    describe_version(spec, settings, version, lambda current: current if line in current else current + line)
