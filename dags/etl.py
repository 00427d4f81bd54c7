"""ETL DAGs (Airflow): one per valid model spec in include/specs, built by ativo.airflow.dags.etl."""

from ativo.airflow.dags.common import valid_specs
from ativo.airflow.dags.etl import build_etl_dag
from ativo.naming import etl_dag_id

for _spec in valid_specs():
    globals()[etl_dag_id(_spec.name)] = build_etl_dag(_spec)
