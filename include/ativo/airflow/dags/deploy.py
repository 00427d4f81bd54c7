"""The DEPLOY DAG of one spec: infra check → (four eyes) → canary or shadow → watch → promote or roll back."""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from airflow.sdk import DAG, Param, PokeReturnValue, dag, get_current_context, task

from ativo.airflow.dags.common import dag_kwargs, schedule
from ativo.airflow.failure import fail
from ativo.config import load_settings
from ativo.spec import ModelSpec

if TYPE_CHECKING:
    from ativo.model.registry import DagRun


def _deploy_approval(spec: ModelSpec) -> type:
    """Airflow's ApprovalOperator, judging the answer (four eyes) and signing it where Airflow hands it over."""
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    class DeployApproval(ApprovalOperator):
        template_fields = (*ApprovalOperator.template_fields, "version")  # rendered again when the answer comes

        def __init__(self, *, version: Any, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.version = version  # infra_check's version (an XComArg at parse time): the one the body showed

        def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
            ret = super().execute_complete(context=context, event=event)  # a "Reject" skips start: held
            if list(ret.get("chosen_options") or []) == [self.APPROVE]:
                from ativo.deploy.approvals import ApprovalRefused, record

                try:
                    record(
                        load_settings(),
                        spec,
                        str(self.version),
                        dict(ret),
                        deploy_actor(context),
                        str(context["run_id"]),
                    )
                except ApprovalRefused as err:
                    fail(str(err))
            return ret

    return DeployApproval


def deploy_actor(context: Any) -> str:
    """Who a deploy run acts for: the Airflow user who triggered it, else the challenger event that did."""
    user = getattr(context.get("dag_run"), "triggering_user_name", None)
    return f"airflow:{user}" if user else "deploy (challenger event)"


def deploy_run(context: Any) -> DagRun:
    """The DAG run a task of the deploy DAG belongs to: every promotion record it writes names it."""
    from ativo.model.registry import DagRun

    return DagRun(dag_id=str(context["dag"].dag_id), run_id=str(context["run_id"]))


def build_deploy_dag(spec: ModelSpec) -> DAG:
    """Deployment of one spec's challengers, triggered by its challenger Asset (or by hand with a version).

    infra_check (the serving loader, an answer, the latency budget) → start (canary at the spec's percent, or
    shadow; the first version becomes champion directly) → watch (a rescheduling sensor: live figures every
    ``watch_interval_seconds`` for ``canary_window_minutes``) → conclude (promote, or roll back with the reason
    and page on-call).
    """
    window_s = spec.deploy.canary_window_minutes * 60

    @dag(
        schedule=schedule(spec, "deploy"),
        **dag_kwargs(spec, "deploy"),
        params={
            "version": Param(
                None,
                type=["null", "string"],
                pattern="^[0-9]+$",
                description="Model version to deploy; empty = the triggering challenger event's, else "
                "the version holding the alias 'challenger'.",
            ),
        },
    )
    def deploy() -> None:
        @task(retries=1, multiple_outputs=spec.deploy.approval == "required")
        def infra_check() -> dict[str, Any]:
            """Load the version through the serving code path; it must answer within the latency budget."""
            from ativo.deploy.promotion import DeployError
            from ativo.deploy.steps import authorized_or_refuse, version_to_deploy
            from ativo.deploy.steps import infra_check as check_infra

            context = get_current_context()
            events = [e for evs in (context.get("triggering_asset_events") or {}).values() for e in evs]
            settings = load_settings()
            requested = context["params"].get("version")
            version = version_to_deploy(spec, settings, requested, [e.extra or {} for e in events])
            actor = deploy_actor(context)
            try:  # before anything else: a rejected or ungated version never reaches even the infra check
                gated = authorized_or_refuse(spec, settings, version, actor=actor, requested=bool(requested))
            except DeployError as err:
                fail(str(err))
            result = check_infra(spec, settings, version)
            if not result.passed:
                fail(f"version {version} failed the infra check: {result.reason}")
            out = {"version": version, "infra": result.metrics, "actor": actor}
            if spec.deploy.approval == "required":
                from ativo.deploy.approvals import body

                out["approval_body"] = body(spec, version, gated, actor, settings.link_url)
            return out

        @task(retries=1)
        def start(checked: dict[str, Any], answer: dict[str, Any] | None = None) -> dict[str, Any]:
            """Put the version on trial (canary or shadow), or make it champion when there is none.

            With four eyes (``deploy.approval: required``), only once someone other than the requester approved.
            """
            from ativo.deploy.promotion import DeployError
            from ativo.deploy.steps import begin

            settings = load_settings()
            context = get_current_context()
            requester = checked.get("actor") or "deploy"
            approval = None
            try:
                if spec.deploy.approval == "required":  # the signed approval, never the approve task's XCom
                    from ativo.deploy.approvals import approved

                    approval = approved(settings, spec, checked["version"], context["run_id"])
                return begin(
                    spec, settings, checked["version"], actor=requester, approval=approval, dag_run=deploy_run(context)
                )
            except DeployError as err:
                fail(str(err))

        @task.sensor(
            poke_interval=spec.deploy.watch_interval_seconds, timeout=window_s + 3600, mode="reschedule", retries=2
        )
        def watch(state: dict[str, Any]) -> PokeReturnValue:
            """Judge the trial on live figures; done at the first breach or when the window ends."""
            from ativo.deploy.steps import check

            verdict = check(spec, load_settings(), state)
            logging.getLogger("ativo.deploy").info("%s — %s", verdict.reason, verdict.figures)
            return PokeReturnValue(is_done=verdict.decided, xcom_value=verdict.to_dict())

        @task(trigger_rule="all_done", retries=2)
        def conclude(
            checked: dict[str, Any] | None, state: dict[str, Any] | None, verdict: dict[str, Any] | None
        ) -> dict[str, Any]:
            """Promote on a passing verdict; otherwise roll back, record why and page on-call."""
            from ativo.airflow.notifier import send_to_oncall
            from ativo.deploy.steps import DeploymentAbandoned, finish
            from ativo.ops.alerts import deploy_payload

            try:
                rec, page = finish(
                    spec, load_settings(), checked, state, verdict, dag_run=deploy_run(get_current_context())
                )
            except DeploymentAbandoned as err:
                if err.record is not None:
                    send_to_oncall(spec.oncall_connection, deploy_payload(spec.name, err.record))
                # Fail the run (not skip): a deployment that never happened must not look like a successful one.
                fail(str(err))
            if page:
                send_to_oncall(spec.oncall_connection, deploy_payload(spec.name, rec))
            return {k: rec.get(k) for k in ("action", "version", "reason", "aliases_after", "uri")}

        checked = infra_check()
        if spec.deploy.approval == "required":  # four eyes: waits without a worker; a timeout answers "Reject"
            approve = _deploy_approval(spec)(
                task_id="approve",
                subject=f"Put {spec.registered_model_name} on live traffic? (four eyes: not the requester)",
                body=checked["approval_body"],  # type: ignore[index]
                version=checked["version"],  # type: ignore[index]
                defaults="Reject",
                response_timeout=dt.timedelta(hours=spec.deploy.approval_timeout_hours),
                retries=0,
            )
            state = start(checked, approve.output)  # type: ignore[arg-type]
        else:
            state = start(checked)  # type: ignore[arg-type]  # XComArg at parse time
        verdict = watch(state)  # type: ignore[arg-type]
        conclude(checked, state, verdict)  # type: ignore[arg-type]

    return deploy()
