"""The training reconciler of one spec: what no training run covers (asset events get lost) gets a run."""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, dag, task
from airflow.sdk.exceptions import AirflowSkipException

from ativo import naming
from ativo.airflow.dags.common import dag_kwargs, schedule
from ativo.config import load_settings
from ativo.spec import ModelSpec


def build_reconcile_dag(spec: ModelSpec) -> DAG:
    """The training reconciler of one spec: when a drift episode or the latest dataset version has no run, start one.

    check (the training-run ledger, :func:`ativo.train.runs.missing_run`) → trigger_training (the spec's training
    DAG with run id ``reconcile__<tag>`` or ``reconcile__drift-<episode>``, its conf, and a note saying why; a run of
    that id already there is left alone). The trigger takes check's output as arguments (XComArgs), no task id.
    """
    from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator

    class TriggerTraining(TriggerDagRunOperator):
        template_fields = (*TriggerDagRunOperator.template_fields, "note")  # the note says why, in the run's UI

    @dag(schedule=schedule(spec, "reconcile"), **dag_kwargs(spec, "reconcile"))
    def reconcile() -> None:
        @task(multiple_outputs=True)
        def check() -> dict[str, Any]:
            """What no training run covers: a drift episode, else the latest dataset version (else skip)."""
            from ativo.store.db import get_engine
            from ativo.train.runs import missing_run

            todo = missing_run(get_engine(load_settings().db_url), spec.name)
            if todo.skip:
                raise AirflowSkipException(todo.skip)
            return todo.to_dict()

        checked = check()
        TriggerTraining(
            task_id="trigger_training",
            trigger_dag_id=naming.train_dag_id(spec.name),
            trigger_run_id=checked["run_id"],  # type: ignore[index]  # an XComArg: the run id once rendered
            conf=checked["conf"],  # type: ignore[index]  # a dict once rendered
            note=checked["reason"],  # type: ignore[index]
            skip_when_already_exists=True,
            wait_for_completion=False,
        )

    return reconcile()
