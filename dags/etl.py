"""ETL DAGs (Airflow): one per valid model spec in include/specs, built by ativo.airflow.dags."""

from ativo.airflow.dags import build_etl_dag, etl_dag_id, valid_specs

for _spec in valid_specs():
    globals()[etl_dag_id(_spec)] = build_etl_dag(_spec)
