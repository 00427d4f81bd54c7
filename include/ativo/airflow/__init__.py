"""The only package that imports Airflow: notifiers and DAG builders adapting :mod:`ativo` to Airflow 3."""

from pathlib import Path

POOLS_FILE = Path(__file__).resolve().parent / "pools.json"
"""The pools the DAGs run in (``gpu``, ``cpu_train``, ``etl``), shipped in the package: ``airflow pools import`` it."""
