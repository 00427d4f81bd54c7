"""Window statistics against a reference profile, with alarms that mean something at every sample size.

For each feature (and the score), the window's rows are counted in the reference's bins and compared two ways:

- **effect size**: the population stability index, PSI = Σ (c − r) · ln(c / r) over the bins' shares (a share of 0
  is floored at ``EPS``). The spec's threshold (``monitor.psi_threshold``) is this: how much drift matters.
- **evidence**: a chi² test of homogeneity between the reference's counts and the window's (both are samples), on
  bins pooled so that every expected count is at least 20 (at 5, the textbook rule, a feature with many rare
  categories got up to twice its share of false alarms at the Holm-adjusted levels: ``bench/drift.py``). Its
  p-values are adjusted across all the features of a run with Holm's method, so that on stationary data a run alarms
  at all with probability at most ``alpha`` (1 %), whatever the window's size.

A feature drifts when its drift is both significant after Holm and at least the threshold: at 500,000 rows a
negligible shift is significant but too small to matter, at 1,000 rows a large-looking PSI may be noise. A category
that the reference never saw but the window holds is drift by itself, whatever the PSI, once Fisher's exact test
(in the same Holm family) says the reference's zero is no accident of its sample.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from ativo.monitor.profile import Binned

EPS = 1e-4
MIN_EXPECTED = 20.0  # see the module doc


def psi(reference: Sequence[float], current: Sequence[float], eps: float = EPS) -> float:
    """Population stability index of ``current`` against ``reference`` (bin counts, the same bins)."""
    rt, ct = float(sum(reference)), float(sum(current))
    if rt == 0 or ct == 0:
        return 0.0
    total = 0.0
    for r, c in zip(reference, current, strict=True):
        rp, cp = max(r / rt, eps), max(c / ct, eps)
        total += (cp - rp) * math.log(cp / rp)
    return total


def pooled(
    reference: Sequence[int], current: Sequence[int], min_expected: float = MIN_EXPECTED
) -> tuple[list[int], list[int]]:
    """The two count vectors with sparse bins pooled.

    Bins empty in both go; bins whose expected count in either sample is under ``min_expected`` are merged into one
    (and, if that one is still sparse, into the smallest other).
    """
    rt, ct = float(sum(reference)), float(sum(current))
    total = rt + ct
    keep_r, keep_c, pool_r, pool_c = [], [], 0, 0
    for r, c in zip(reference, current, strict=True):
        if r + c == 0:
            continue
        share = (r + c) / total
        if min(share * rt, share * ct) < min_expected:
            pool_r, pool_c = pool_r + r, pool_c + c
        else:
            keep_r.append(r)
            keep_c.append(c)
    if pool_r + pool_c:
        share = (pool_r + pool_c) / total
        if keep_r and min(share * rt, share * ct) < min_expected:
            i = min(range(len(keep_r)), key=lambda k: keep_r[k] + keep_c[k])
            keep_r[i] += pool_r
            keep_c[i] += pool_c
        else:
            keep_r.append(pool_r)
            keep_c.append(pool_c)
    return keep_r, keep_c


def homogeneity_pvalue(reference: Sequence[int], current: Sequence[int]) -> float:
    """p-value of the chi² test that both samples come from one distribution over the bins (1.0: nothing to test)."""
    from scipy.stats import chi2

    r, c = pooled(reference, current)
    if len(r) < 2 or sum(r) == 0 or sum(c) == 0:
        return 1.0
    rt, ct = float(sum(r)), float(sum(c))
    total = rt + ct
    stat = 0.0
    for ri, ci in zip(r, c, strict=True):
        col = ri + ci
        for observed, row_total in ((ri, rt), (ci, ct)):
            expected = row_total * col / total
            stat += (observed - expected) ** 2 / expected
    return float(chi2.sf(stat, len(r) - 1))


def holm(pvalues: dict[str, float], alpha: float) -> set[str]:
    """The names Holm's step-down procedure rejects at family-wise level ``alpha``."""
    ordered = sorted(pvalues.items(), key=lambda kv: kv[1])
    m = len(ordered)
    rejected: set[str] = set()
    for i, (name, p) in enumerate(ordered):
        if p > alpha / (m - i):
            break
        rejected.add(name)
    return rejected


@dataclass
class Drift:
    """One feature's (or the score's) drift in a window."""

    name: str
    psi: float
    p_value: float
    significant: bool
    drifted: bool
    reason: str
    new_categories: dict[str, int] | None = None

    def to_dict(self) -> dict[str, object]:
        """JSON-able form."""
        return asdict(self)


def new_categories(reference: Binned, current: Sequence[int]) -> dict[str, int]:
    """Categories the window holds that the reference never saw (missing aside), with their counts."""
    if reference.categories is None:
        return {}
    return {
        cat: int(c)
        for cat, r, c in zip(reference.categories[:-1], reference.counts, current, strict=False)
        if r == 0 and c > 0
    }


def judge(
    references: Mapping[str, Binned], windows: Mapping[str, Sequence[int]], *, threshold: float, alpha: float = 0.01
) -> list[Drift]:
    """Every feature's drift, judged as the module doc says (Holm across all of ``windows`` at ``alpha``)."""
    return judge_family(references, windows, threshold=threshold, alpha=alpha)[0]


def judge_family(
    references: Mapping[str, Binned],
    windows: Mapping[str, Sequence[int]],
    *,
    threshold: float,
    alpha: float = 0.01,
    extra: Mapping[str, float] | None = None,
) -> tuple[list[Drift], set[str]]:
    """:func:`judge`, with ``extra`` p-values (other alarms of the same run) in the same Holm family.

    Returns:
        The features' drift, and the names of ``extra`` that the family rejects.
    """
    from scipy.stats import fisher_exact

    values = {n: psi(references[n].counts, windows[n]) for n in windows}
    pvalues = {n: homogeneity_pvalue(references[n].counts, windows[n]) for n in windows}
    fresh_of = {n: new_categories(references[n], windows[n]) for n in windows}
    family = dict(pvalues)
    family.update({f"#{k}": v for k, v in (extra or {}).items()})
    for n, fresh in fresh_of.items():
        if fresh:
            k, rows, ref_rows = sum(fresh.values()), sum(windows[n]), references[n].rows
            family[f"{n}#new"] = float(fisher_exact([[k, rows - k], [0, ref_rows]], alternative="greater")[1])
    significant = holm(family, alpha)
    out = []
    for name in windows:
        fresh = fresh_of[name] if f"{name}#new" in significant else {}
        is_sig = name in significant
        rows = sum(windows[name])
        if fresh:
            shown = ", ".join(f"{k!r} ({v} of {rows} rows)" for k, v in sorted(fresh.items()))
            reason = f"{name}: a category the reference never saw: {shown}"
            drifted = True
        elif is_sig and values[name] >= threshold:
            reason = f"{name}: PSI {values[name]:.3f} ≥ {threshold:g}, beyond noise (Holm-adjusted p < {alpha:g})"
            drifted = True
        elif is_sig:
            reason = f"{name}: shifted beyond noise, but PSI {values[name]:.3f} is under {threshold:g}"
            drifted = False
        else:
            reason = f"{name}: PSI {values[name]:.3f}, within noise at {rows} rows (p {pvalues[name]:.3g})"
            drifted = False
        out.append(
            Drift(
                name=name,
                psi=values[name],
                p_value=pvalues[name],
                significant=is_sig,
                drifted=drifted,
                reason=reason,
                new_categories=fresh or None,
            )
        )
    return out, {k for k in (extra or {}) if f"#{k}" in significant}
