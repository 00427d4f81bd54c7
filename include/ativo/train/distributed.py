"""Training beyond one machine: ``compute.engine: dask`` trains with ``xgboost.dask`` on a ``dask.distributed`` cluster.

The dataset version is a lazy hash split (:func:`ativo.data.training.dask_split`) whose partitions the workers read
themselves: no process ever holds the dataset. The cluster is :func:`ativo.compute.cluster.client_for`'s. Only the
held-out splits' labels and scores come back to this process, for the metrics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ativo.compute.cluster import client_for
from ativo.config import Settings
from ativo.data.features import LABEL
from ativo.data.split import DaskSplit
from ativo.spec import ModelSpec
from ativo.train.trainer import TrainedModel, metrics_for

if TYPE_CHECKING:
    import pandas as pd


def _design(df: pd.DataFrame, spec: ModelSpec) -> pd.DataFrame:
    from ativo.model.encoding import design_matrix

    return design_matrix(df, spec)


def _labels(df: pd.DataFrame) -> pd.Series:
    return df[LABEL].astype("float32")


def _inputs(spec: ModelSpec, frame: Any) -> tuple[Any, Any]:
    """A lazy split as the booster's inputs and labels (the same encoding as every other path)."""
    import pandas as pd

    features = frame.map_partitions(_design, spec, meta=_design(frame._meta, spec))
    labels = frame.map_partitions(_labels, meta=pd.Series(dtype="float32", name=LABEL))
    return features, labels


def fit_dask(
    spec: ModelSpec,
    settings: Settings,
    split: DaskSplit,
    device: str = "cpu",
    overrides: dict[str, Any] | None = None,
) -> TrainedModel:
    """Train with ``xgboost.dask`` on the cluster, early-stopping on the validation split; score both held-out splits.

    Only the held-out splits' labels and scores (two numbers a row) come back to this process for the metrics.
    The booster is an ordinary one: registry, gates and serving read it as any other.
    """
    client = client_for(spec, settings)
    params: dict[str, Any] = {"objective": spec.model.objective, "eval_metric": ["logloss", "auc"]}
    params.update(spec.model.params)
    params.update(overrides or {})
    params.pop("nthread", None)  # each worker uses its own threads
    params["device"] = device
    with client.as_current():  # xgboost.dask looks the client up as the current one
        return _fit(client, spec, split, params)


def _fit(client: Any, spec: ModelSpec, split: DaskSplit, params: dict[str, Any]) -> TrainedModel:
    import numpy as np
    from xgboost import dask as dxgb

    xtrain, ytrain = _inputs(spec, split.train)
    xvalid, yvalid = _inputs(spec, split.valid)
    xtest, ytest = _inputs(spec, split.test)
    dtrain = dxgb.DaskQuantileDMatrix(client, xtrain, ytrain, enable_categorical=True)
    dvalid = dxgb.DaskQuantileDMatrix(client, xvalid, yvalid, enable_categorical=True, ref=dtrain)
    out = dxgb.train(
        client,
        params,
        dtrain,
        num_boost_round=spec.model.num_boost_round,
        evals=[(dvalid, "valid")],
        early_stopping_rounds=spec.model.early_stopping_rounds,
        verbose_eval=False,
    )
    booster = out["booster"]
    curve = [float(v) for v in out["history"]["valid"]["auc"]]
    best = int(getattr(booster, "best_iteration", len(curve) - 1))
    pv, pt = dxgb.predict(client, booster, xvalid), dxgb.predict(client, booster, xtest)
    yv, pv, yt, pt = client.compute([yvalid, pv, ytest, pt], sync=True)
    metrics: dict[str, float] = {"best_iteration": float(best)}
    metrics.update(metrics_for(np.asarray(yv), np.asarray(pv), "valid"))
    metrics.update(metrics_for(np.asarray(yt), np.asarray(pt), "test"))
    return TrainedModel(booster=booster, params=params, best_iteration=best, metrics=metrics, curve=curve)
