"""Anytime-valid evidence for a canary: tests that may be looked at after every row and still keep their error rate.

A watch looks at its figures every ``watch_interval_seconds`` and may stop at any look. A fixed-sample test (a
p-value, a Wilson bound) read at every look rejects a true hypothesis far more often than its level says; these do
not, whatever the looks and whenever the watch stops:

- :func:`rate_evidence`: a rate of rows against a limit (scoring errors; calls slower than the latency budget).
  The likelihood ratio of the rows against the limit, mixed over a few rates on one side of it, is a non-negative
  supermartingale under any rate on the other side (each ratio's expectation is below 1 there), so by Ville's
  inequality it reaches ``1/α`` with probability at most α, ever. Exact, for any number of rows.
- :func:`anytime_margin`: for an estimate with a standard error (PSI of the scores, a difference of AUCs), the
  half-width of an asymptotic confidence sequence (Robbins' normal mixture, as in Waudby-Smith et al., "Time-uniform
  central limit theory and asymptotic confidence sequences", 2024): ``z`` grows like √(log n) instead of staying at
  1.645, the price of being allowed to look at every row.

Each returns which of the two one-sided hypotheses the data rejects: *harm* (the figure is beyond its limit) at
``alpha_harm``, *safe* (it is within it) at ``alpha_safe``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

# Where the normal-mixture boundary is tightest (rows): near the size at which canaries are usually decided.
TUNED_ROWS = 1_000


@dataclass(frozen=True)
class Evidence:
    """What the rows so far show about one watched figure against its limit."""

    figure: str
    estimate: float | None
    low: float | None  # the anytime lower bound used for harm (at the harm level)
    high: float | None  # the anytime upper bound used for safety (at the safety level)
    limit: float
    rows: int
    harm: bool  # shown beyond the limit
    safe: bool  # shown within the limit
    says: str  # the figure in words, for a reason

    @property
    def state(self) -> str:
        """``harm``, ``safe`` or ``open``."""
        return "harm" if self.harm else "safe" if self.safe else "open"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (the verdict's figures)."""
        r = lambda v: None if v is None or not math.isfinite(v) else float(f"{v:.6g}")  # noqa: E731
        return {
            "figure": self.figure,
            "estimate": r(self.estimate),
            "low": r(self.low),
            "high": r(self.high),
            "limit": self.limit,
            "rows": self.rows,
            "state": self.state,
        }


# The rates a mixture weighs equally, as multiples of the limit: below it (safety), above it (harm). A few points
# near the limit find a small excess quickly; far ones find a gross one at once.
SAFE_MULTIPLES = (0.0, 0.1, 0.25, 0.4, 0.55, 0.7, 0.8, 0.9)
HARM_MULTIPLES = (1.1, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)


def _log_mixture(k: float, n: float, limit: float, multiples: tuple[float, ...]) -> float:
    """Log of the equal-weight mixture, over rates ``limit × multiples`` (below 1), of the rows' likelihood ratio."""
    failures = n - k
    logs = []
    for m in multiples:
        q = limit * m
        if q >= 1:
            continue
        if q <= 0:
            logs.append(-math.inf if k else -failures * math.log1p(-limit))
            continue
        logs.append(k * math.log(q / limit) + failures * (math.log1p(-q) - math.log1p(-limit)))
    if not logs:  # a limit so near 1 that no rate above it is left: nothing can be shown beyond it
        return -math.inf
    top = max(logs)
    if top == -math.inf:
        return top
    return top + math.log(sum(math.exp(v - top) for v in logs) / len(logs))


def rate_evidence(
    figure: str, k: float, n: float, limit: float, *, alpha_harm: float, alpha_safe: float, unit: str = "rows"
) -> Evidence:
    """Whether ``k`` of ``n`` rows show a rate beyond ``limit`` (harm) or within it (safe), at any stopping time.

    A limit of 0 allows no failure: one is harm, and none is never *shown* safe by data alone (it is treated as
    safe: nothing can be learnt by waiting). A limit of 1 is always safe.
    """
    k, n = float(max(k, 0)), float(max(n, 0))
    rate = k / n if n else None
    says = f"{figure} {k:.0f} of {n:.0f} {unit}" + (f" ({rate:.2%})" if rate is not None else "")
    if limit <= 0:
        return Evidence(figure, rate, rate, rate, limit, int(n), k > 0, k == 0, says)
    if limit >= 1:
        return Evidence(figure, rate, rate, rate, limit, int(n), False, True, says)
    if n <= 0:
        return Evidence(figure, None, None, None, limit, 0, False, False, says)
    harm = _log_mixture(k, n, limit, HARM_MULTIPLES) >= math.log(1 / alpha_harm)
    safe = _log_mixture(k, n, limit, SAFE_MULTIPLES) >= math.log(1 / alpha_safe)
    return Evidence(figure, rate, None, None, limit, int(n), harm, safe, says)


def anytime_z(rows: float, alpha: float, tuned_rows: int = TUNED_ROWS) -> float:
    """The multiplier of a standard error that makes ``estimate ± z · se`` a confidence sequence at level α.

    Two-sided at α (used one side at a time, each holds at α or better); ``tuned_rows`` is where the boundary is
    tightest.
    """
    rows = max(float(rows), 1.0)
    rho2 = (-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / tuned_rows
    t = rows * rho2
    return math.sqrt(2 * (t + 1) / t * math.log(math.sqrt(t + 1) / alpha))


def anytime_margin(se: float, rows: float, alpha: float) -> float:
    """Half-width of the anytime-valid bound on an estimate with standard error ``se`` on ``rows`` rows."""
    if not math.isfinite(se):
        return math.inf
    return se * anytime_z(rows, alpha)


def bounded_evidence(
    figure: str,
    estimate: float,
    se: float,
    rows: float,
    limit: float,
    *,
    harm_above: bool,
    alpha_harm: float,
    alpha_safe: float,
    says: str,
) -> Evidence:
    """An estimate with a standard error against ``limit``: harm when the anytime bound on the far side passes it.

    Args:
        figure: the watched figure's name.
        estimate: its value on the rows so far.
        se: its standard error.
        rows: the rows it rests on (where the boundary stands).
        limit: what it must not pass.
        harm_above: True when a value above ``limit`` is the harm (PSI), False when below it is (an AUC change).
        alpha_harm: the level at which harm is shown.
        alpha_safe: the level at which safety is shown.
        says: the figure in words.
    """
    if not (math.isfinite(estimate) and math.isfinite(se)) or rows <= 0:
        return Evidence(figure, None, None, None, limit, int(max(rows, 0)), False, False, says)
    harm_margin = anytime_margin(se, rows, alpha_harm)
    safe_margin = anytime_margin(se, rows, alpha_safe)
    if harm_above:
        low, high = estimate - harm_margin, estimate + safe_margin
        harm, safe = low > limit, high < limit
    else:
        low, high = estimate - safe_margin, estimate + harm_margin
        harm, safe = high < limit, low > limit
    return Evidence(figure, estimate, low, high, limit, int(rows), harm, safe, says)


def psi_standard_error(reference: list[float], current: list[float], eps: float) -> tuple[float, float]:
    """PSI's small-sample bias and its delta-method standard error, for two independent samples' bin counts.

    Under no shift PSI ≈ (1/n₁ + 1/n₂) · χ²(bins − 1), so its bias is (bins − 1)(1/n₁ + 1/n₂); the standard error
    comes from PSI's gradient in each sample's shares. A bin empty in one sample makes the gradient (and so
    the error) large: a few rows cannot show a shift, nor its absence.
    """
    rt, ct = float(sum(reference)), float(sum(current))
    if rt <= 0 or ct <= 0:
        return math.nan, math.inf
    p = [max(r / rt, eps) for r in reference]
    q = [max(c / ct, eps) for c in current]
    # ∂PSI/∂q_i and ∂PSI/∂p_i of Σ (q − p) ln(q / p)
    gq = [math.log(qi / pi) + 1 - pi / qi for pi, qi in zip(p, q, strict=True)]
    gp = [-math.log(qi / pi) + 1 - qi / pi for pi, qi in zip(p, q, strict=True)]

    def var(shares: list[float], grad: list[float], n: float) -> float:
        m = sum(s * g for s, g in zip(shares, grad, strict=True))
        return max(sum(s * g * g for s, g in zip(shares, grad, strict=True)) - m * m, 0.0) / n

    bins = sum(1 for r, c in zip(reference, current, strict=True) if r + c > 0)
    bias = max(bins - 1, 0) * (1 / rt + 1 / ct)
    return bias, math.sqrt(var(q, gq, ct) + var(p, gp, rt))
