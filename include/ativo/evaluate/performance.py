"""Performance on the pinned test set, and the comparison with the serving champion on the same rows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ativo.data.features import LABEL
from ativo.evaluate.results import INSUFFICIENT, Check, GateResult
from ativo.spec import ModelSpec

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from ativo.data.split import Split
    from ativo.model.served import ServedModel


def expected_calibration_error(y_true: Any, proba: Any, bins: int = 10) -> tuple[float, list[dict[str, float]]]:
    """ECE over ``bins`` equal-width probability bins (weighted by rows), and the reliability table."""
    import numpy as np

    y = np.asarray(y_true, dtype=float)
    p = np.asarray(proba, dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    table = []
    for b in range(bins):
        mask = idx == b
        n = int(mask.sum())
        if not n:
            continue
        mean_p, rate = float(p[mask].mean()), float(y[mask].mean())
        ece += n / len(p) * abs(mean_p - rate)
        table.append(
            {
                "bin_low": float(edges[b]),
                "bin_high": float(edges[b + 1]),
                "rows": n,
                "mean_predicted": mean_p,
                "observed_rate": rate,
            }
        )
    return float(ece), table


def performance_gate(spec: ModelSpec, model: ServedModel, split: Split) -> GateResult:
    """AUC, log-loss and calibration error on the held-out test set against the spec's thresholds.

    Each is judged on its confidence interval at ``gates.confidence`` (:mod:`ativo.evaluate.intervals`): AUC by
    DeLong's variance, log-loss as the mean of per-row losses, calibration error by a seeded bootstrap.
    """
    import numpy as np

    from ativo.evaluate import intervals

    cfg, confidence = spec.gates.performance, spec.gates.confidence
    y = split.test[LABEL].to_numpy()
    p = model.predict_frame(split.test).astype("float64")
    auc = intervals.auc(y, p, confidence)
    clipped = np.clip(p, 1e-15, 1 - 1e-15)
    ll = intervals.mean(-(y * np.log(clipped) + (1 - y) * np.log(1 - clipped)), confidence)
    ece_value, table = expected_calibration_error(y, p)
    ece = (
        intervals.bootstrap(lambda at: expected_calibration_error(y[at], p[at])[0], len(y), confidence)
        if cfg.max_ece is not None
        else intervals.Interval(ece_value, ece_value, ece_value, len(y), confidence)
    )
    acc = float(((p >= spec.gates.decision_threshold) == y).mean())
    checks = [
        Check.bounded("auc", auc, cfg.min_auc, "min", "ranking quality on the held-out test set"),
        Check.bounded("logloss", ll, cfg.max_logloss, "max", "probabilistic accuracy"),
        Check.bounded("ece", ece, cfg.max_ece, "max", "predicted probabilities do not match observed rates"),
    ]
    return GateResult.judge(
        "performance",
        checks,
        ok=f"test AUC {auc.value:.4f}, log-loss {ll.value:.4f}, ECE {ece.value:.4f} on {len(y)} rows",
        metrics={"accuracy": acc, "test_rows": len(y)},
        details={"calibration": table},
    )


def comparison_rows(test: pd.DataFrame, champion_seen_ids: set[str] | None, record_id: str) -> pd.DataFrame:
    """The challenger's test rows the champion never trained or early-stopped on (its own data is no test)."""
    if not champion_seen_ids:
        return test
    return test[~test[record_id].astype(str).isin(champion_seen_ids)]


def champion_gate(
    spec: ModelSpec,
    model: ServedModel,
    split: Split,
    champion: ServedModel | None,
    champion_seen_ids: set[str] | None = None,
) -> GateResult:
    """The challenger's test AUC may be at most ``tolerance`` below the champion's, on the same rows.

    Args:
        spec: thresholds (``gates.champion.tolerance``).
        model: the challenger.
        split: the challenger's split; its test set is the comparison set.
        champion: the version serving as ``champion`` now, or None (the first model passes this gate).
        champion_seen_ids: record ids of the rows the champion trained or early-stopped on; they are left out.
    """
    from sklearn.metrics import roc_auc_score

    from ativo.evaluate import intervals

    tolerance = spec.gates.champion.tolerance
    if champion is None:
        return GateResult(
            gate="champion",
            passed=True,
            reason="no champion is serving yet: nothing to compare with",
            thresholds={"tolerance": tolerance},
        )
    rows = comparison_rows(split.test, champion_seen_ids, spec.data_schema.record_id)
    y = rows[LABEL].to_numpy()
    need = spec.gates.champion.min_rows
    if len(rows) < need or len(set(y)) < 2:
        return GateResult(
            gate="champion",
            passed=False,
            thresholds={"tolerance": tolerance, "min_rows": need},
            metrics={"rows": len(rows), "champion_version": champion.version},
            reason=f"{INSUFFICIENT}only {len(rows)} test rows are unseen by champion version "
            f"{champion.version}"
            + (f" (gates.champion.min_rows is {need})" if len(rows) < need else " and they hold a single class")
            + "; retrain on a dataset version with "
            "new data",
        )
    mine, other = model.predict_frame(rows), champion.predict_frame(rows)
    ours, theirs = float(roc_auc_score(y, mine)), float(roc_auc_score(y, other))
    delta = ours - theirs
    paired = intervals.auc_difference(y, other, mine, spec.gates.confidence)  # the champion's lead, same rows
    checks = [
        Check.bounded(
            "auc_deficit",
            _deficit(paired),
            tolerance,
            "max",
            f"challenger AUC {ours:.4f} vs champion version {champion.version} {theirs:.4f} on the same "
            f"{len(rows)} rows",
        )
    ]
    return GateResult.judge(
        "champion",
        checks,
        ok=f"AUC {ours:.4f} vs champion version {champion.version} {theirs:.4f} "
        f"({delta:+.4f}) on {len(rows)} rows neither trained on",
        metrics={
            "challenger_auc": ours,
            "champion_auc": theirs,
            "auc_delta": delta,
            "rows": len(rows),
            "champion_version": champion.version,
        },
    )


def replacement_gate(
    spec: ModelSpec, model: ServedModel, split: Split, replaced: str, replaced_test_auc: float
) -> GateResult:
    """An erasure retraining's champion gate: at most ``tolerance`` below the test AUC of the version it replaces.

    Each AUC is measured on the held-out test split of the same dataset version. The rows the replaced version
    trained on cannot be told apart any more (its split included the erased rows), so the two are not scored on
    shared rows: each is judged on rows it never saw, drawn the same way.
    """
    import math

    from ativo.evaluate import intervals

    tolerance, confidence = spec.gates.champion.tolerance, spec.gates.confidence
    y, scores = split.test[LABEL].to_numpy(), model.predict_frame(split.test)
    measured = intervals.auc(y, scores, confidence)
    ours = measured.value
    delta = ours - replaced_test_auc
    # Two AUCs of two test splits drawn the same way from data that differs by the erased rows: each as uncertain
    # as the other, so the difference is sqrt(2) times as uncertain as ours alone (unclipped).
    half = math.sqrt(2) * intervals.normal_quantile(confidence) * intervals.auc_standard_error(y, scores)
    lead = intervals.Interval(-delta, -delta - half, -delta + half, measured.rows, confidence)
    checks = [
        Check.bounded(
            "auc_deficit",
            _deficit(lead),
            tolerance,
            "max",
            f"retrained AUC {ours:.4f} vs {replaced_test_auc:.4f} recorded for version {replaced}, each on "
            "its own held-out test split",
        )
    ]
    return GateResult.judge(
        "champion",
        checks,
        ok=f"retrained AUC {ours:.4f} vs {replaced_test_auc:.4f} recorded for version {replaced} "
        f"({delta:+.4f}), each on its held-out test split",
        metrics={
            "challenger_auc": ours,
            "champion_auc": replaced_test_auc,
            "auc_delta": delta,
            "rows": len(split.test),
            "champion_version": replaced,
            "replaces": replaced,
        },
    )


def _deficit(lead: Any) -> Any:
    """How far below the other model's AUC this one is (0 when above), from the interval of the other's lead."""
    from ativo.evaluate.intervals import Interval

    return Interval(max(0.0, lead.value), max(0.0, lead.low), max(0.0, lead.high), lead.rows, lead.confidence)


def decisions(spec: ModelSpec, proba: np.ndarray) -> np.ndarray:
    """0/1 decisions at the spec's threshold."""
    return (proba >= spec.gates.decision_threshold).astype("int8")
