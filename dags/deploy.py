"""Deployment DAGs (Airflow): one per valid model spec, scheduled on the spec's challenger Asset."""

from ativo.airflow.dags import build_deploy_dag, deploy_dag_id, valid_specs

for _spec in valid_specs():
    globals()[deploy_dag_id(_spec)] = build_deploy_dag(_spec)
