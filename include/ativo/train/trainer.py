"""Training: XGBoost with the spec's parameters on a seeded split (:mod:`ativo.data.split`), and its metrics.

Pure functions over data frames; MLflow logging lives in :mod:`ativo.train.tracking`, registration in
:mod:`ativo.model.registry`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ativo.data.features import LABEL
from ativo.data.split import Split
from ativo.model.encoding import frame_dmatrix, score_frame
from ativo.spec import ModelSpec

if TYPE_CHECKING:
    import xgboost as xgb


@dataclass
class TrainedModel:
    """A fitted booster and what it scored."""

    booster: xgb.Booster
    params: dict[str, Any]
    best_iteration: int
    metrics: dict[str, float]
    curve: list[float] | None = None  # the validation AUC per round, where training could not report it live (dask)


def metrics_for(y_true: Any, proba: Any, prefix: str) -> dict[str, float]:
    """AUC, log-loss and accuracy at 0.5."""
    from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

    return {
        f"{prefix}_auc": float(roc_auc_score(y_true, proba)),
        f"{prefix}_logloss": float(log_loss(y_true, proba, labels=[0, 1])),
        f"{prefix}_accuracy": float(accuracy_score(y_true, proba >= 0.5)),
    }


def fit(
    spec: ModelSpec,
    split: Split,
    device: str = "cpu",
    overrides: dict[str, Any] | None = None,
    callbacks: list[Any] | None = None,
    threads: int | None = None,
) -> TrainedModel:
    """Train XGBoost with the spec's parameters (``overrides`` win), early-stopping on the validation set.

    Args:
        spec: the model spec (parameters, rounds, early stopping).
        split: train / validation / test frames.
        device: ``cpu`` or ``cuda`` (the device XGBoost sees; a GPU lease makes it the leased one).
        overrides: parameters that win over the spec's (a trial's suggestion).
        callbacks: XGBoost training callbacks (the pruning callback).
        threads: CPU threads (the task's pool slots); all cores when None.
    """
    import xgboost as xgb

    params: dict[str, Any] = {
        "objective": spec.model.objective,
        "eval_metric": ["logloss", "auc"],
        "nthread": threads or 0,
    }
    params.update(spec.model.params)
    params.update(overrides or {})
    params["device"] = device
    dtrain = frame_dmatrix(split.train, spec, label=split.train[LABEL])
    dvalid = frame_dmatrix(split.valid, spec, label=split.valid[LABEL])
    booster = xgb.train(
        params,
        dtrain,
        num_boost_round=spec.model.num_boost_round,
        evals=[(dvalid, "valid")],
        early_stopping_rounds=spec.model.early_stopping_rounds,
        verbose_eval=False,
        callbacks=callbacks,
    )
    best = int(getattr(booster, "best_iteration", spec.model.num_boost_round - 1))
    metrics: dict[str, float] = {"best_iteration": float(best)}
    for name, frame in (("valid", split.valid), ("test", split.test)):
        metrics.update(metrics_for(frame[LABEL].to_numpy(), score_frame(booster, frame, spec), name))
    return TrainedModel(booster=booster, params=params, best_iteration=best, metrics=metrics)
