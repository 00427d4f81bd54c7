"""Deployment DAGs (Airflow): one per valid model spec, scheduled on the spec's challenger Asset."""

from ativo.airflow.dags.common import valid_specs
from ativo.airflow.dags.deploy import build_deploy_dag
from ativo.naming import deploy_dag_id

for _spec in valid_specs():
    globals()[deploy_dag_id(_spec.name)] = build_deploy_dag(_spec)
