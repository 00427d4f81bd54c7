"""Training on the spec's engine: XGBoost in this process on a split in memory, or ``xgboost.dask`` on the cluster.

What the data is (:class:`ativo.data.training.TrainingData`) says which: a search's trials and an erasure's
retraining call :func:`fit_on` and do not care.
"""

from __future__ import annotations

from typing import Any

from ativo.config import Settings
from ativo.data.training import TrainingData
from ativo.spec import ModelSpec
from ativo.train.distributed import fit_dask
from ativo.train.trainer import TrainedModel, fit


def fit_on(
    data: TrainingData,
    spec: ModelSpec,
    settings: Settings,
    params: dict[str, Any],
    *,
    device: str = "cpu",
    threads: int | None = None,
) -> TrainedModel:
    """Train with ``params`` over the spec's, early-stopping on the validation split, on ``data``'s engine.

    Args:
        data: the dataset version's split, in memory or lazy on the cluster.
        spec: the model spec (parameters, rounds, early stopping).
        settings: where the cluster is (``compute.engine: dask``).
        params: parameters that win over the spec's (a trial's suggestion, a version's recorded ones).
        device: ``cpu`` or ``cuda``.
        threads: CPU threads for XGBoost in this process (all cores when None; the cluster's workers use theirs).
    """
    if data.lazy is not None:
        return fit_dask(spec, settings, data.lazy, device=device, overrides=params)
    assert data.split is not None
    return fit(spec, data.split, device=device, overrides=params, threads=threads)
