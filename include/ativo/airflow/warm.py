"""Heavy libraries imported once by Airflow's forkserver (through :mod:`ativo.airflow.preload`).

LocalExecutor workers fork from the forkserver, and each task forks from a worker, so every task starts with
these already imported instead of paying seconds of import time (Great Expectations alone takes ~10 s).
Only the forkserver imports this module; DAG parsing never does.
"""

from __future__ import annotations

import logging


def _warm_up() -> None:
    """Fill caches that every task would otherwise fill again after its fork.

    MLflow maps every installed distribution to its modules (``importlib.metadata.packages_distributions``, about
    a second over this environment's ~1,000 packages) the first time a model is logged, to check its pinned
    requirements. The gate tasks import fairlearn.
    """
    try:
        from mlflow.utils.requirements_utils import _init_packages_to_modules_map

        _init_packages_to_modules_map()
    except Exception:  # a private helper of MLflow's: without it tasks are slower, never wrong
        logging.getLogger(__name__).warning("could not pre-build MLflow's package map", exc_info=True)
    import fairlearn.metrics  # noqa: F401
    import fairlearn.postprocessing  # noqa: F401


logging.getLogger("great_expectations").setLevel(logging.WARNING)
logging.getLogger("great_expectations._docs_decorators").setLevel(logging.WARNING)

import alembic.autogenerate  # noqa: E402,F401  # Optuna's storage schema check
import alembic.operations  # noqa: E402,F401
import alembic.runtime.migration  # noqa: E402,F401
import alembic.script  # noqa: E402,F401
import dvc.api  # noqa: E402,F401
import dvc.repo  # noqa: E402,F401
import git  # noqa: E402,F401  # GitPython, for MLflow's run context
import great_expectations  # noqa: E402,F401
import mlflow  # noqa: E402,F401
import mlflow.data.pandas_dataset  # noqa: E402,F401
import mlflow.models.signature  # noqa: E402,F401
import mlflow.pyfunc  # noqa: E402,F401
import mlflow.tracing  # noqa: E402,F401
import mlflow.tracing.export  # noqa: E402,F401
import mlflow.tracing.processor.otel  # noqa: E402,F401
import mlflow.tracking.request_header.registry  # noqa: E402,F401
import mlflow.xgboost  # noqa: E402,F401
import narwhals.stable.v2  # noqa: E402,F401
import optuna  # noqa: E402,F401
import optuna.storages._rdb.models  # noqa: E402,F401
import pandas  # noqa: E402,F401
import pyarrow.dataset  # noqa: E402,F401
import pyarrow.pandas_compat  # noqa: E402,F401
import pyarrow.parquet  # noqa: E402,F401
import sklearn.metrics  # noqa: E402,F401
import sklearn.model_selection  # noqa: E402,F401
import sqlalchemy  # noqa: E402,F401
import xgboost  # noqa: E402,F401

import ativo.data.etl  # noqa: E402,F401
import ativo.data.validation  # noqa: E402,F401
import ativo.evaluate.suite  # noqa: E402,F401
import ativo.train.search  # noqa: E402,F401

_warm_up()
