"""Training reconcilers (Airflow): one per valid model spec, so that no dataset version goes untrained."""

from ativo.airflow.dags.common import valid_specs
from ativo.airflow.dags.reconcile import build_reconcile_dag
from ativo.naming import reconcile_dag_id

for _spec in valid_specs():
    globals()[reconcile_dag_id(_spec.name)] = build_reconcile_dag(_spec)
