"""Confidence intervals of what the gates measure, and the rows a decision needs.

A gate judges a bound, not a point: a rate measured on a few hundred rows moves by several points between two
retrainings of the same model on the same data, so a point estimate next to a limit flips the verdict on noise. Each
function here returns an :class:`Interval`: the estimate, its lower and upper one-sided confidence bounds at the
given confidence (together a two-sided interval at ``2 · confidence − 1``), and the rows it rests on.

- :func:`proportion`: a rate of rows (flip rates, an attack's success rate): exact Clopper-Pearson bounds.
- :func:`proportion_difference`: the difference of two independent rates (membership advantage, TPR − FPR):
  Newcombe's hybrid score bounds.
- :func:`auc`: the area under the ROC curve, and :func:`auc_difference` of two scorings of the same rows: DeLong's
  variance (computed from midranks, O(n log n)), normal bounds clipped to [0, 1].
- :func:`mean`: the mean of per-row values (log-loss): the central limit theorem's normal bounds.
- :func:`bootstrap`: any statistic of the rows (calibration error): seeded percentile bootstrap.

:func:`needed_rows` says, for a rate limit, the rows below which the data cannot show the model within it even when
it observes no failure at all: fewer than that is insufficient evidence, either way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Interval:
    """An estimate with its one-sided confidence bounds and the rows it rests on."""

    value: float
    low: float
    high: float
    rows: int
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"value": self.value, "low": self.low, "high": self.high, "rows": self.rows}


def normal_quantile(confidence: float) -> float:
    """The standard normal quantile at ``confidence`` (1.645 at 0.95): the half-width of a one-sided normal bound."""
    from scipy.stats import norm

    return float(norm.ppf(confidence))


def proportion(successes: int, n: int, confidence: float) -> Interval:
    """The rate ``successes / n`` with exact (Clopper-Pearson) one-sided bounds; ``n == 0`` gives [0, 1]."""
    from scipy.stats import beta

    if n <= 0:
        return Interval(float("nan"), 0.0, 1.0, 0, confidence)
    alpha = 1 - confidence
    low = 0.0 if successes <= 0 else float(beta.ppf(alpha, successes, n - successes + 1))
    high = 1.0 if successes >= n else float(beta.ppf(1 - alpha, successes + 1, n - successes))
    return Interval(successes / n, low, high, n, confidence)


def _wilson(successes: int, n: int, z: float) -> tuple[float, float]:
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def proportion_difference(k1: int, n1: int, k2: int, n2: int, confidence: float) -> Interval:
    """``k1/n1 − k2/n2`` of two independent samples, with Newcombe's hybrid score bounds (method 10)."""
    if n1 <= 0 or n2 <= 0:
        return Interval(float("nan"), -1.0, 1.0, max(n1, 0) + max(n2, 0), confidence)
    z = normal_quantile(confidence)
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = _wilson(k1, n1, z)
    l2, u2 = _wilson(k2, n2, z)
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return Interval(d, max(-1.0, low), min(1.0, high), n1 + n2, confidence)


def _midranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x``, ties given their mean rank."""
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    ranks = np.empty(len(x), dtype=float)
    # the first and last position of each run of equal values
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_x)) + 1]
    ends = np.r_[starts[1:], len(x)]
    mean_rank = (starts + ends + 1) / 2.0  # positions start..end-1 are ranks start+1..end
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def _delong(y: np.ndarray, scores: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """AUCs of each scoring of the rows, and their DeLong covariance matrix."""
    pos, neg = y == 1, y == 0
    m, n = int(pos.sum()), int(neg.sum())
    aucs, v10, v01 = [], [], []
    for s in scores:
        s = np.asarray(s, dtype=float)
        r_all, r_pos, r_neg = _midranks(s), _midranks(s[pos]), _midranks(s[neg])
        structural_pos = (r_all[pos] - r_pos) / n  # per positive: the share of negatives it outscores
        structural_neg = 1.0 - (r_all[neg] - r_neg) / m  # per negative: the share of positives that outscore it
        aucs.append(structural_pos.mean())
        v10.append(structural_pos)
        v01.append(structural_neg)
    s10 = np.atleast_2d(np.cov(np.vstack(v10))) if m > 1 else np.zeros((len(scores), len(scores)))
    s01 = np.atleast_2d(np.cov(np.vstack(v01))) if n > 1 else np.zeros((len(scores), len(scores)))
    return np.asarray(aucs), s10 / m + s01 / n


def auc_standard_error(y: np.ndarray, score: np.ndarray) -> float:
    """DeLong's standard error of the ROC AUC of ``score`` (NaN with one class)."""
    y = np.asarray(y).astype(int)
    if len(np.unique(y)) < 2:
        return float("nan")
    _, cov = _delong(y, [score])
    return math.sqrt(max(float(cov[0, 0]), 0.0))


def auc(y: np.ndarray, score: np.ndarray, confidence: float) -> Interval:
    """The ROC AUC of ``score`` for labels ``y`` (0/1) with DeLong's normal bounds, clipped to [0, 1]."""
    y = np.asarray(y).astype(int)
    if len(np.unique(y)) < 2:  # one class: no AUC (a NaN value fails its check)
        return Interval(float("nan"), 0.0, 1.0, len(y), confidence)
    (value,), cov = _delong(y, [score])
    half = normal_quantile(confidence) * math.sqrt(max(float(cov[0, 0]), 0.0))
    return Interval(float(value), max(0.0, value - half), min(1.0, value + half), len(y), confidence)


def auc_difference(y: np.ndarray, first: np.ndarray, second: np.ndarray, confidence: float) -> Interval:
    """AUC of ``first`` minus AUC of ``second`` on the same rows (paired DeLong), with normal bounds."""
    y = np.asarray(y).astype(int)
    if len(np.unique(y)) < 2:
        return Interval(float("nan"), -1.0, 1.0, len(y), confidence)
    aucs, cov = _delong(y, [first, second])
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    d, half = float(aucs[0] - aucs[1]), normal_quantile(confidence) * math.sqrt(max(var, 0.0))
    return Interval(d, max(-1.0, d - half), min(1.0, d + half), len(y), confidence)


def mean(values: np.ndarray, confidence: float) -> Interval:
    """The mean of per-row ``values`` with the central limit theorem's normal bounds."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    if n == 0:
        return Interval(float("nan"), float("-inf"), float("inf"), 0, confidence)
    m = float(values.mean())
    half = normal_quantile(confidence) * (float(values.std(ddof=1)) / math.sqrt(n) if n > 1 else float("inf"))
    return Interval(m, m - half, m + half, n, confidence)


def bootstrap(
    statistic: Callable[[np.ndarray], float],
    rows: int,
    confidence: float,
    *,
    resamples: int = 200,
    seed: int = 0,
) -> Interval:
    """``statistic(index)`` on all rows, with seeded percentile-bootstrap bounds (``index``: row positions drawn)."""
    everything = np.arange(rows)
    value = float(statistic(everything))
    if rows < 2:
        return Interval(value, float("-inf"), float("inf"), rows, confidence)
    rng = np.random.default_rng(seed)
    draws = np.array([statistic(rng.integers(0, rows, rows)) for _ in range(resamples)])
    low, high = np.quantile(draws, [1 - confidence, confidence])
    return Interval(value, float(low), float(high), rows, confidence)


def needed_rows(limit: float, confidence: float) -> int:
    """Rows below which a rate cannot be shown at most ``limit`` even with no failure observed.

    With none of ``n`` rows failing, the exact upper bound is ``1 − (1 − confidence)^(1/n)``; it reaches ``limit``
    at ``n = ln(1 − confidence) / ln(1 − limit)`` (the "rule of three" at 95 %: about ``3 / limit``).
    """
    if limit <= 0 or limit >= 1:  # a limit of zero is judged on any failure seen; one of 1 on nothing
        return 1
    return math.ceil(math.log(1 - confidence) / math.log(1 - limit))
