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
from ativo.monitor.stats import Drift, judge
from ativo.spec import ModelSpec

if TYPE_CHECKING:
    import pandas as pd

    from ativo.store.objects import ObjectStore

SCORE = "score"


def read_window(store: ObjectStore, spec: ModelSpec, start: dt.datetime, end: dt.datetime,
                version: str | None = None) -> pd.DataFrame:  # fmt: skip
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

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        doc = asdict(self)
        doc["drift"] = [d.to_dict() for d in self.drift]
        return doc


def _auc_se(auc: float, positives: int, negatives: int) -> float:
    """Hanley and McNeil's standard error of an AUC."""
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)) / max(
        1, positives * negatives)  # fmt: skip
    return math.sqrt(max(var, 0.0))


def assess(spec: ModelSpec, profile: Profile, window: pd.DataFrame, *, alpha: float | None = None) -> Assessment:
    """Judge a window against the version's reference profile (see the module doc)."""
    import numpy as np
    from scipy.stats import norm
    from sklearn.metrics import log_loss, roc_auc_score

    from ativo.monitor.performance import estimated_auc

    cfg = spec.monitor
    alpha = cfg.alpha if alpha is None else alpha
    rows = len(window)
    if rows < cfg.min_rows:
        return Assessment(spec.name, profile.version, rows, judged=False, drifted=False,
                          reasons=[f"{rows} rows in the window, under monitor.min_rows = {cfg.min_rows}: not judged"])
    references = dict(profile.features)
    counts = {name: references[name].count(window[f"f_{name}"]) for name in references if f"f_{name}" in window}
    references[SCORE] = profile.scores
    counts[SCORE] = profile.scores.count(window[SCORE])
    drift = judge(references, counts, threshold=cfg.psi_threshold, alpha=alpha)
    reasons = [d.reason for d in drift if d.drifted]
    z = float(norm.ppf(1 - alpha))
    ref_auc = profile.metrics.get("auc")
    scores = window[SCORE].to_numpy(dtype="float64")
    est = estimated_auc(scores, draws=50)
    performance: dict[str, Any] = {"reference_auc": ref_auc, "estimated_auc": est.value, "estimated_auc_std": est.std}
    if ref_auc is not None and not math.isnan(est.std):
        drop = ref_auc - est.value
        if drop >= cfg.auc_drop_threshold and drop > z * est.std:
            reasons.append(f"estimated AUC without labels {est.value:.3f} (±{est.std:.3f}) is {drop:.3f} under the "
                           f"reference {ref_auc:.3f}")  # fmt: skip
    labelled = window[window["label"].notna()] if "label" in window else window.iloc[:0]
    performance["labelled_rows"] = len(labelled)
    y = labelled["label"].to_numpy(dtype="int64") if len(labelled) else np.array([], dtype="int64")
    if len(labelled) >= cfg.min_labels and 0 < y.sum() < len(y) and ref_auc is not None:
        auc = float(roc_auc_score(y, labelled[SCORE]))
        se = _auc_se(auc, int(y.sum()), int(len(y) - y.sum()))
        performance.update(auc=auc, auc_se=se, logloss=float(log_loss(y, np.clip(labelled[SCORE], 1e-7, 1 - 1e-7),
                                                                      labels=[0, 1])))  # fmt: skip
        drop = ref_auc - auc
        if drop >= cfg.auc_drop_threshold and drop > z * se:
            reasons.append(f"AUC on {len(labelled)} labelled rows is {auc:.3f} (±{se:.3f}), {drop:.3f} under the "
                           f"reference {ref_auc:.3f}")  # fmt: skip
    elif len(labelled):
        performance["note"] = f"{len(labelled)} labelled rows, under monitor.min_labels = {cfg.min_labels}"
    return Assessment(spec.name, profile.version, rows, judged=True, drifted=bool(reasons), reasons=reasons,
                      drift=drift, performance=performance)  # fmt: skip
