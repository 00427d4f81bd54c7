"""Erasure DAGs (Airflow): one per valid model spec, on the spec's erasure.cron and on REST triggers with conf."""

from ativo.airflow.dags.common import valid_specs
from ativo.airflow.erasure import build_erasure_dag
from ativo.naming import erasure_dag_id

for _spec in valid_specs():
    globals()[erasure_dag_id(_spec.name)] = build_erasure_dag(_spec)
