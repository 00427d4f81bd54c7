"""The only package that imports Airflow: notifiers and DAG builders adapting :mod:`ativo` to Airflow 3."""
