"""Training DAGs (Airflow): one per valid model spec, scheduled on the spec's features Asset."""

from ativo.airflow.dags import build_train_dag, train_dag_id, valid_specs

for _spec in valid_specs():
    globals()[train_dag_id(_spec)] = build_train_dag(_spec)
