"""Task logs that say what happened: third-party progress chatter is turned down to warnings.

Great Expectations announces a temporary docs site per validation, ART's HopSkipJump logs its success rate per
sample batch (hundreds of lines beside a gate that reports one figure), Optuna logs every trial it is told about.
Ativo logs each of those results itself, once, with its bound and limit.
"""

from __future__ import annotations

import logging

NOISY = (
    "great_expectations",
    "art",
    "optuna",
    "alembic",
    "numexpr",
    "urllib3",
    "botocore",
    "s3fs",
    "dvc",
    "mlflow.tracking._tracking_service",
    "mlflow.store.db.utils",
    "shap",
    "fairlearn",
    "distributed",
)


def quiet_third_party(level: int = logging.WARNING) -> None:
    """Raise the level of the chatty third-party loggers (idempotent; their warnings and errors still show).

    Call it again after importing such a library: some set their own module loggers' levels on import (Great
    Expectations sets one to INFO), and a child logger's own level wins over its parent's.
    """
    children = tuple(f"{n}." for n in NOISY)
    for name in (*NOISY, *(n for n in list(logging.root.manager.loggerDict) if n.startswith(children))):
        logger = logging.getLogger(name)
        # Only a change: every setLevel clears the cache of every logger in the process (about a thousand once
        # Airflow, MLflow and GX are imported), and a task process calls this at each DAG parse (measured with 941
        # loggers: 33 ms a call when it re-set levels that were already WARNING, 0.7 ms now).
        if logger.level != level:
            logger.setLevel(level)
