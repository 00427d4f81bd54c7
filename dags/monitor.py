"""Monitoring DAGs (Airflow): one per valid model spec, on the spec's monitor.cron."""

from ativo.airflow.dags.common import valid_specs
from ativo.airflow.dags.monitor import build_monitor_dag
from ativo.naming import monitor_dag_id

for _spec in valid_specs():
    globals()[monitor_dag_id(_spec.name)] = build_monitor_dag(_spec)
