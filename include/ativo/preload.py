"""Heavy libraries imported once by Airflow's forkserver (``[core] mp_forkserver_preload=ativo.preload``).

LocalExecutor workers fork from the forkserver, and each task forks from a worker, so every task starts with
these already imported instead of paying seconds of import time (Great Expectations alone takes ~10 s).
Only the forkserver imports this module; DAG parsing never does.
"""

from __future__ import annotations

import logging

logging.getLogger("great_expectations").setLevel(logging.WARNING)
logging.getLogger("great_expectations._docs_decorators").setLevel(logging.WARNING)

import dvc.api  # noqa: E402,F401
import dvc.repo  # noqa: E402,F401
import great_expectations  # noqa: E402,F401
import mlflow  # noqa: E402,F401
import mlflow.xgboost  # noqa: E402,F401
import optuna  # noqa: E402,F401
import pandas  # noqa: E402,F401
import pyarrow.parquet  # noqa: E402,F401
import sklearn.metrics  # noqa: E402,F401
import sklearn.model_selection  # noqa: E402,F401
import sqlalchemy  # noqa: E402,F401
import xgboost  # noqa: E402,F401

import ativo.data.etl  # noqa: E402,F401
import ativo.data.validation  # noqa: E402,F401
import ativo.train.search  # noqa: E402,F401
