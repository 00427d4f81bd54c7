"""A monitoring window: the champion's logged decisions over a time span, judged against its reference profile.

:func:`read_window` reads the prediction log (and the delayed labels sent to ``/feedback``) for ``[start, end)``;
:func:`assess` judges it: data drift per feature and prediction drift (one Holm family, :mod:`ativo.monitor.stats`),
performance decay from the labels the window has, and decay estimated without labels from the scores
(:mod:`ativo.monitor.performance`). A window under ``monitor.min_rows`` rows is not judged, and says so.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ativo.monitor.profile import Profile
from ativo.monitor.stats import Drift, judge_family
from ativo.spec import ModelSpec

if TYPE_CHECKING:
    import pandas as pd

    from ativo.store.objects import ObjectStore

SCORE = "score"


def read_window(
    store: ObjectStore, spec: ModelSpec, start: dt.datetime, end: dt.datetime, version: str | None = None
) -> pd.DataFrame:
    """The decisions logged in ``[start, end)`` (of ``version`` when given), with their label where one arrived.

    Columns: the log's (``f_<feature>`` hold the decoded feature values, ``score`` the score) and ``label`` (NaN for a
    row without one).
    """
    import pandas as pd

    from ativo.serve.predlog import read_log

    days, day = [], start.date()
    while day <= (end - dt.timedelta(microseconds=1)).date():
        days.append(day.isoformat())
        day += dt.timedelta(days=1)
    log = read_log(store, "predictions", spec.name, days)
    if log.empty:
        return log
    ts = pd.to_datetime(log["ts"], utc=True)
    keep = (ts >= pd.Timestamp(start)) & (ts < pd.Timestamp(end))
    if version is not None:
        keep &= log["version"].astype(str) == str(version)
    window = log[keep].reset_index(drop=True)
    labels = read_log(store, "labels", spec.name)  # labels arrive later than their day: read them all
    if labels.empty:
        window["label"] = float("nan")
        return window
    latest = labels.sort_values("ts").drop_duplicates("prediction_id", keep="last")[["prediction_id", "label"]]
    return window.merge(latest, on="prediction_id", how="left")


@dataclass
class Assessment:
    """What a window showed, and whether it is drift that matters."""

    spec: str
    version: str
    rows: int
    judged: bool
    drifted: bool
    reasons: list[str]
    drift: list[Drift] = field(default_factory=list)
    performance: dict[str, Any] = field(default_factory=dict)
    fairness: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, tuple[int, ...]] = field(default_factory=dict)  # the window in the profile's bins (the charts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (without the bin counts: the report's charts show them)."""
        doc = asdict(self)
        doc["drift"] = [d.to_dict() for d in self.drift]
        doc.pop("counts")
        return doc


def _auc_se(auc: float, positives: int, negatives: int) -> float:
    """Hanley and McNeil's standard error of an AUC."""
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)) / max(
        1, positives * negatives
    )
    return math.sqrt(max(var, 0.0))


def _spread_pvalue(rates: dict[str, tuple[float, int]], limit: float) -> tuple[float, float, str, str]:
    """The largest difference of a rate between two groups, and the p-value that it is no larger than ``limit``.

    ``rates`` maps a group to (rate, rows the rate rests on). One-sided z-test of the difference between the highest
    and the lowest group (binomial standard errors); p = 1 when the difference is within the limit.
    """
    from scipy.stats import norm

    hi = max(rates, key=lambda g: rates[g][0])
    lo = min(rates, key=lambda g: rates[g][0])
    (ph, nh), (pl, nl) = rates[hi], rates[lo]
    spread = ph - pl
    se = math.sqrt(ph * (1 - ph) / nh + pl * (1 - pl) / nl)
    if spread <= limit:
        return spread, 1.0, hi, lo
    return spread, float(norm.sf((spread - limit) / se)) if se > 0 else 0.0, hi, lo


def _fairness(spec: ModelSpec, profile: Profile, window: pd.DataFrame) -> list[dict[str, Any]]:
    """Per protected attribute: the window's selection-rate (and, with labels, TPR/FPR) differences between groups.

    Each entry holds the gate's limit it is judged against (``None``: reported only), the window's difference, the
    reference's (the version's test split) and the p-value that the window's difference is within the limit.
    """
    import numpy as np

    gate = spec.gates.fairness
    if "decision" in window:
        decided = window["decision"].to_numpy(dtype="float64")
    else:
        decided = (window[SCORE].to_numpy(dtype="float64") >= spec.gates.decision_threshold).astype("float64")
    labels = window["label"].to_numpy(dtype="float64") if "label" in window else np.full(len(window), np.nan)
    out = []
    for attr in spec.fairness_attributes:
        if f"f_{attr}" not in window:
            continue
        groups = window[f"f_{attr}"].astype(str).to_numpy()
        reference = profile.groups.get(attr, {})
        measures: dict[str, dict[str, tuple[float, int]]] = {"selection_rate": {}, "tpr": {}, "fpr": {}}
        for g in np.unique(groups):
            rows = groups == g
            if rows.sum() >= gate.min_group_size:
                measures["selection_rate"][str(g)] = (float(decided[rows].mean()), int(rows.sum()))
            for metric, truth in (("tpr", 1.0), ("fpr", 0.0)):
                known = rows & (labels == truth)
                if known.sum() >= gate.min_group_labels:
                    measures[metric][str(g)] = (float(decided[known].mean()), int(known.sum()))
        limits = {
            "selection_rate": gate.max_demographic_parity_difference,
            "tpr": gate.max_equalized_odds_difference,
            "fpr": gate.max_equalized_odds_difference,
        }
        for metric, rates in measures.items():
            if len(rates) < 2:
                continue
            limit = limits[metric]
            spread, p, hi, lo = _spread_pvalue(rates, limit if limit is not None else 1.0)
            ref = [
                float(v[metric])  # type: ignore[arg-type]
                for v in reference.values()
                if v.get(metric) is not None and (v.get("rows") or 0) >= gate.min_group_size
            ]
            out.append(
                {
                    "attribute": attr,
                    "metric": metric,
                    "difference": spread,
                    "limit": limit,
                    "reference_difference": (max(ref) - min(ref)) if len(ref) > 1 else None,
                    "p_value": p if limit is not None else None,
                    "highest": hi,
                    "lowest": lo,
                    "rates": {g: {"rate": r, "rows": n} for g, (r, n) in sorted(rates.items())},
                }
            )
    return out


def assess(spec: ModelSpec, profile: Profile, window: pd.DataFrame, *, alpha: float | None = None) -> Assessment:
    """Judge a window against the version's reference profile (see the module doc).

    Every alarm of the run (each feature and the score, a new category, realised and estimated AUC decay, each
    fairness difference) is one hypothesis of one Holm family at ``monitor.alpha``, and raises only when its effect
    is also at least the spec's threshold: on stationary data the run alarms at all with probability ≤ alpha.
    """
    import numpy as np
    from scipy.stats import norm
    from sklearn.metrics import log_loss, roc_auc_score

    from ativo.monitor.performance import estimated_auc

    cfg = spec.monitor
    alpha = cfg.alpha if alpha is None else alpha
    rows = len(window)
    if rows < cfg.min_rows:
        return Assessment(
            spec.name,
            profile.version,
            rows,
            judged=False,
            drifted=False,
            reasons=[f"{rows} rows in the window, under monitor.min_rows = {cfg.min_rows}: not judged"],
        )
    references = dict(profile.features)
    counts = {name: references[name].count(window[f"f_{name}"]) for name in references if f"f_{name}" in window}
    references[SCORE] = profile.scores
    counts[SCORE] = profile.scores.count(window[SCORE])
    extra: dict[str, float] = {}  # the other alarms' p-values, judged in the features' Holm family
    alarms: dict[str, str] = {}  # their reasons, for those whose effect is large enough to matter
    ref_auc = profile.metrics.get("auc")
    scores = window[SCORE].to_numpy(dtype="float64")
    est = estimated_auc(scores, draws=50)
    performance: dict[str, Any] = {
        "reference_auc": ref_auc,
        "estimated_auc": est.value,
        "estimated_auc_std": est.std,
        "reference_logloss": profile.metrics.get("logloss"),
    }
    # the estimate is compared with what it gave on the version's own test split (like with like: a calibration
    # error that lowers it there lowers it here too); profiles from before that figure use the test AUC
    ref_est = profile.metrics.get("expected_auc") or ref_auc
    performance["reference_estimated_auc"] = ref_est
    if ref_est is not None and not math.isnan(est.value) and not math.isnan(est.std):
        drop = ref_est - est.value
        p = float(norm.sf(drop / est.std)) if est.std > 0 else float(drop <= 0)  # one score for all: no spread
        extra["estimated_auc"] = performance["estimated_auc_p"] = p
        if drop >= cfg.auc_drop_threshold:
            alarms["estimated_auc"] = (
                f"estimated AUC without labels {est.value:.3f} (±{est.std:.3f}) is "
                f"{drop:.3f} under the reference's {ref_est:.3f}"
            )
    labelled = window[window["label"].notna()] if "label" in window else window.iloc[:0]
    performance["labelled_rows"] = len(labelled)
    y = labelled["label"].to_numpy(dtype="int64") if len(labelled) else np.array([], dtype="int64")
    if len(labelled) >= cfg.min_labels and 0 < y.sum() < len(y) and ref_auc is not None:
        auc = float(roc_auc_score(y, labelled[SCORE]))
        se = _auc_se(auc, int(y.sum()), int(len(y) - y.sum()))
        performance.update(
            auc=auc, auc_se=se, logloss=float(log_loss(y, np.clip(labelled[SCORE], 1e-7, 1 - 1e-7), labels=[0, 1]))
        )
        drop = ref_auc - auc
        extra["auc"] = performance["auc_p"] = float(norm.sf(drop / se)) if se > 0 else float(drop <= 0)
        if drop >= cfg.auc_drop_threshold:
            alarms["auc"] = (
                f"AUC on {len(labelled)} labelled rows is {auc:.3f} (±{se:.3f}), {drop:.3f} under the "
                f"reference {ref_auc:.3f}"
            )
    elif len(labelled):
        performance["note"] = f"{len(labelled)} labelled rows, under monitor.min_labels = {cfg.min_labels}"
    fairness = _fairness(spec, profile, window)
    for f in fairness:
        if f["p_value"] is None:
            continue
        key = f"fairness:{f['attribute']}:{f['metric']}"
        extra[key] = f["p_value"]
        ref = f["reference_difference"]
        alarms[key] = (
            f"fairness: {f['attribute']} {f['metric']} differs by {f['difference']:.3f} between "
            f"{f['highest']!r} and {f['lowest']!r}, beyond the gate's limit {f['limit']:g}"
            + (f" (the reference's was {ref:.3f})" if ref is not None else "")
        )
    drift, significant = judge_family(references, counts, threshold=cfg.psi_threshold, alpha=alpha, extra=extra)
    reasons = [d.reason for d in drift if d.drifted]
    reasons += [alarms[k] for k in extra if k in significant and k in alarms]
    for f in fairness:
        f["significant"] = f"fairness:{f['attribute']}:{f['metric']}" in significant
    return Assessment(
        spec.name,
        profile.version,
        rows,
        judged=True,
        drifted=bool(reasons),
        reasons=reasons,
        drift=drift,
        performance=performance,
        fairness=fairness,
        counts=counts,
    )
