"""The names Ativo gives each spec's DAGs, in one place (the DAG builders, the CLI and the tools all use them)."""

from __future__ import annotations

from collections.abc import Callable


def etl_dag_id(spec: str) -> str:
    """DAG id of a spec's ETL."""
    return f"{spec}__etl"


TRAIN_SUFFIX = "__train"
DEPLOY_SUFFIX = "__deploy"


def train_dag_id(spec: str) -> str:
    """DAG id of a spec's training."""
    return f"{spec}{TRAIN_SUFFIX}"


def deploy_dag_id(spec: str) -> str:
    """DAG id of a spec's deployment."""
    return f"{spec}{DEPLOY_SUFFIX}"


def reconcile_dag_id(spec: str) -> str:
    """DAG id of a spec's training reconciler."""
    return f"{spec}__reconcile"


def monitor_dag_id(spec: str) -> str:
    """DAG id of a spec's monitoring."""
    return f"{spec}__monitor"


ERASURE_SUFFIX = "__erasure"


def erasure_dag_id(spec: str) -> str:
    """DAG id of a spec's erasure."""
    return f"{spec}{ERASURE_SUFFIX}"


DAG_IDS: dict[str, Callable[[str], str]] = {
    "etl": etl_dag_id,
    "train": train_dag_id,
    "deploy": deploy_dag_id,
    "reconcile": reconcile_dag_id,
    "monitor": monitor_dag_id,
    "erasure": erasure_dag_id,
}
"""The DAG families a spec gets, each with the function that names its DAG."""


def dag_ids(spec: str) -> list[str]:
    """Every DAG a spec gets (one per family of :data:`DAG_IDS`)."""
    return [dag_id(spec) for dag_id in DAG_IDS.values()]
