"""Training DAGs (Airflow): one per valid model spec, scheduled on the spec's features Asset."""

from ativo.airflow.dags.common import valid_specs
from ativo.airflow.dags.train import build_train_dag
from ativo.naming import train_dag_id

for _spec in valid_specs():
    globals()[train_dag_id(_spec.name)] = build_train_dag(_spec)
