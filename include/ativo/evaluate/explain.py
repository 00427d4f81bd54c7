"""Explanations: per-prediction SHAP contributions from XGBoost (``pred_contribs``) and global importance.

TreeSHAP contributions of a row plus the bias term add up to the model's margin (log-odds) exactly, up to float32
rounding; the gate checks that on a sample, so an explanation shown to a person is the model's own arithmetic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ativo.evaluate.results import Check, GateResult
from ativo.spec import ModelSpec

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from ativo.data.split import Split
    from ativo.model.served import ServedModel


def contributions(model: ServedModel, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(SHAP contributions per feature plus a last bias column, margins) for an encoded matrix."""
    dm = model.dmatrix(x)
    return model.booster.predict(dm, pred_contribs=True), model.booster.predict(dm, output_margin=True)


def top_contributions(names: list[str], row: np.ndarray, k: int = 3) -> list[dict[str, Any]]:
    """The ``k`` features that moved one prediction most (signed log-odds), largest first."""
    import numpy as np

    order = np.argsort(-np.abs(row[: len(names)]))[:k]
    return [{"feature": names[i], "contribution": float(row[i])} for i in order]


def global_importance(names: list[str], contribs: np.ndarray) -> dict[str, float]:
    """Mean absolute SHAP contribution per feature, largest first."""
    import numpy as np

    mean_abs = np.abs(contribs[:, : len(names)]).mean(axis=0)
    return {names[i]: float(mean_abs[i]) for i in np.argsort(-mean_abs)}


def explainability_gate(spec: ModelSpec, model: ServedModel, split: Split) -> GateResult:
    """Contributions must sum to the margin on a sample of test rows; reports global importance."""
    import numpy as np

    cfg = spec.gates.explainability
    rows: pd.DataFrame = split.test.sample(min(cfg.samples, len(split.test)), random_state=0)
    contribs, margin = contributions(model, model.encode_frame(rows))
    error = float(np.abs(contribs.sum(axis=1) - margin).max())
    names = spec.data_schema.feature_names
    importance = global_importance(names, contribs)
    top = next(iter(importance))
    checks = [
        Check(
            "additivity_error",
            error,
            cfg.max_additivity_error,
            "max",
            "largest gap between a row's contributions plus bias and its margin (log-odds)",
        )
    ]
    return GateResult.judge(
        "explainability",
        checks,
        ok=f"contributions add up to the margin within {error:.1e} on {len(rows)} rows; {top} matters most",
        metrics={"rows": len(rows), "bias": float(contribs[0, -1])},
        details={"importance": importance, "example": top_contributions(names, contribs[0])},
    )
