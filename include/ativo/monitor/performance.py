"""Performance of a window: realised from delayed labels, and estimated without them from calibrated scores.

Without labels, a calibrated model's score is the probability of the positive class, so each row's label can be
taken as a Bernoulli draw with that probability (confidence-based performance estimation, in the spirit of
NannyML's CBPE). The expected AUC is then the expected share of (positive, negative) pairs the scores order
correctly, computed exactly in O(n log n); its uncertainty is the spread of the AUC over labels drawn that way.
It is only as good as the calibration, which the performance gate bounds (``max_ece``) and which a monitoring run
checks against the realised AUC once labels arrive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Estimate:
    """An estimated metric with its standard deviation over plausible label draws."""

    value: float
    std: float
    rows: int


def expected_auc(scores: Any) -> float:
    """The AUC expected when each row is positive with probability equal to its score (ties count one half)."""
    import numpy as np

    p = np.clip(np.asarray(scores, dtype="float64"), 0.0, 1.0)
    if len(p) < 2:
        return float("nan")
    order = np.argsort(p, kind="mergesort")
    s, q = p[order], 1.0 - p[order]
    # For each row as the positive: the expected negatives strictly below it, and half of those tied with it.
    _, first, counts = np.unique(s, return_index=True, return_counts=True)
    neg_cum = np.concatenate([[0.0], np.cumsum(q)])
    below = np.repeat(neg_cum[first], counts)  # negatives' mass of the rows with a smaller score
    tied = np.repeat(neg_cum[first + counts] - neg_cum[first], counts) - q  # others with the same score
    numerator = float(np.sum(s * (below + 0.5 * tied)))
    denominator = float(np.sum(s) * np.sum(q) - np.sum(s * q))  # every ordered pair of distinct rows
    return numerator / denominator if denominator > 0 else float("nan")


def estimated_auc(scores: Any, *, draws: int = 100, seed: int = 0) -> Estimate:
    """The expected AUC of a window without labels, with its standard deviation over ``draws`` label draws."""
    import numpy as np
    from scipy.stats import rankdata

    p = np.clip(np.asarray(scores, dtype="float64"), 0.0, 1.0)
    value = expected_auc(p)
    rng = np.random.default_rng(seed)
    ranks = rankdata(p)  # once: a draw's AUC is then its positives' rank sum (Mann-Whitney), ties counting half
    sampled = []
    for _ in range(draws):
        y = rng.random(len(p)) < p
        pos = int(y.sum())
        if 0 < pos < len(p):
            sampled.append((float(ranks[y].sum()) - pos * (pos + 1) / 2) / (pos * (len(p) - pos)))
    std = float(np.std(sampled, ddof=1)) if len(sampled) > 1 else float("nan")
    return Estimate(value=value, std=std, rows=len(p))
