"""Group fairness of a model's decisions (fairlearn), per protected attribute and their intersection.

For each view (every attribute alone, and all of them together when intersections are on) fairlearn's metric
functions give each group's selection rate, true- and false-positive rate and support (the groups of a fairlearn
``MetricFrame``, without its cost). Differences are taken over the groups with enough support to be more than
noise; smaller groups are reported and marked. The optional mitigation (fairlearn's ``ThresholdOptimizer``, fitted
on the validation set, judged on the test set) turns into a JSON decision policy of per-group thresholds that
serving applies, and its effect is reported before/after.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ativo.data.features import LABEL
from ativo.evaluate.results import Check, GateResult
from ativo.spec import ModelSpec

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from ativo.data.split import Split
    from ativo.model.served import ServedModel

SEP = " & "
MISSING = "(missing)"  # the group of the rows whose protected attribute is missing


def _views(spec: ModelSpec) -> list[tuple[str, ...]]:
    attrs = spec.fairness_attributes
    views: list[tuple[str, ...]] = [(a,) for a in attrs]
    if spec.gates.fairness.intersections and len(attrs) > 1:
        views.append(tuple(attrs))
    return views


def _group_key(index: Any) -> str:
    return SEP.join(str(v) for v in index) if isinstance(index, tuple) else str(index)


def group_metrics(spec: ModelSpec, frame: pd.DataFrame, y_pred: np.ndarray) -> dict[str, Any]:
    """Per view: each group's rates and support, and the differences over the groups with enough support."""
    import numpy as np
    from fairlearn.metrics import false_positive_rate, selection_rate, true_positive_rate

    cfg = spec.gates.fairness
    y = frame[LABEL].to_numpy()
    decided = np.asarray(y_pred)
    out: dict[str, Any] = {}
    for view in _views(spec):
        # a row without the attribute is a group of its own, judged like the others (never left out unseen)
        sf = frame[list(view)].astype(str).fillna(MISSING)
        # The groups fairlearn's MetricFrame forms (sorted; an intersection no row falls into is left out), each
        # judged by fairlearn's own metric functions on its rows: the MetricFrame itself stacked every column of
        # every group element by element (np.stack), 90% of the gate's time, for the same figures.
        by = sf[view[0]] if len(view) == 1 else [sf[c] for c in view]  # a value, or a tuple of values, per group
        groups = {}
        for idx, at in sorted(sf.groupby(by).indices.items()):
            t, p = y[at], decided[at]
            rows, pos = len(t), int(np.sum(t))
            groups[_group_key(idx)] = {
                "rows": rows,
                "positives": pos,
                "negatives": int(rows - pos),
                "selection_rate": float(selection_rate(t, p)),
                "tpr": float(true_positive_rate(t, p)),
                "fpr": float(false_positive_rate(t, p)),
                "judged": rows >= cfg.min_group_size,
            }
        big = [g for g in groups.values() if g["judged"]]
        sel = [(g["selection_rate"], g["rows"]) for g in big]
        tpr = [(g["tpr"], g["positives"]) for g in big if g["positives"] >= cfg.min_group_labels]
        fpr = [(g["fpr"], g["negatives"]) for g in big if g["negatives"] >= cfg.min_group_labels]
        rates = [r for r, _ in sel]
        both = _pairs(tpr, fpr)
        out[SEP.join(view)] = {
            "groups": groups,
            "demographic_parity_difference": _spread(sel),
            "demographic_parity_difference_bound": _spread_bound(sel, cfg.confidence),
            "disparate_impact_ratio": (min(rates) / max(rates)) if len(rates) > 1 and max(rates) > 0 else 1.0,
            "equalized_odds_difference": max(_spread(tpr), _spread(fpr)),
            # the largest of the TPR and the FPR pairs, bounded all at once
            "equalized_odds_difference_bound": max(_spread_bound(r, cfg.confidence, both) for r in (tpr, fpr)),
            "groups_judged": len(big),
            "groups_with_tpr": len(tpr),
            "groups_with_fpr": len(fpr),
            "groups_too_small": sorted(k for k, g in groups.items() if not g["judged"]),
        }
    return out


def insufficient(spec: ModelSpec, views: dict[str, Any]) -> list[str]:
    """Why the views cannot support a verdict: a view with fewer than two judged groups compares nothing.

    Equalized odds needs two groups with enough positives (TPR) or negatives (FPR) as well, when it is judged.
    """
    cfg = spec.gates.fairness
    out = []
    for name, v in views.items():
        sizes = ", ".join(f"{k} {g['rows']}" for k, g in sorted(v["groups"].items(), key=lambda kv: -kv[1]["rows"]))
        if v["groups_judged"] < 2:
            out.append(
                f"view '{name}' has {v['groups_judged']} group(s) with at least gates.fairness.min_group_size "
                f"= {cfg.min_group_size} test rows (groups: {sizes or 'none'}); a difference needs two"
            )
        elif cfg.max_equalized_odds_difference is not None and min(v["groups_with_tpr"], v["groups_with_fpr"]) < 2:
            out.append(
                f"view '{name}': fewer than two groups have gates.fairness.min_group_labels = "
                f"{cfg.min_group_labels} positives ({v['groups_with_tpr']} do) and negatives "
                f"({v['groups_with_fpr']} do), so equalized odds cannot be measured"
            )
    return out


def _spread(rates: list[tuple[float, float]]) -> float:
    """Largest gap between two groups' rates."""
    values = [r for r, _ in rates]
    return (max(values) - min(values)) if len(values) > 1 else 0.0


def _pairs(*rates: list[tuple[float, float]]) -> int:
    """How many pairs of groups the largest gaps of these rate lists are taken over."""
    return sum(len(r) * (len(r) - 1) // 2 for r in rates)


def _spread_bound(rates: list[tuple[float, float]], confidence: float | None, comparisons: int | None = None) -> float:
    """The smallest largest-gap the data supports at ``confidence`` (one-sided), simultaneously over every pair.

    The largest gap is the largest of ``comparisons`` pair gaps (default: the pairs of ``rates``), so each pair is
    bounded at ``1 − (1 − confidence) / comparisons`` (Bonferroni): with five groups, the most extreme of ten
    noisy pairs would otherwise cross the limit by chance several times as often as ``confidence`` says. Each
    rate's variance is binomial, with the Agresti–Caffo adjustment so that a rate of 0 or 1 in a small group is not
    taken as certain. Without a confidence level, the point estimate.
    """
    import itertools
    import math
    from statistics import NormalDist

    if confidence is None:
        return _spread(rates)
    comparisons = max(comparisons or _pairs(rates), 1)
    z = NormalDist().inv_cdf(1 - (1 - confidence) / comparisons)

    def var(rate: float, n: float) -> float:
        adj = (rate * n + 1) / (n + 2)
        return adj * (1 - adj) / (n + 2)

    bounds = [
        abs(a - b) - z * math.sqrt(var(a, na) + var(b, nb)) for (a, na), (b, nb) in itertools.combinations(rates, 2)
    ]
    return max(0.0, *bounds) if bounds else 0.0


def _worst(views: dict[str, Any], key: str, pick: Any) -> tuple[float, str]:
    view = pick(views, key=lambda v: views[v][key])
    return float(views[view][key]), view


def _checks(spec: ModelSpec, views: dict[str, Any]) -> list[Check]:
    cfg = spec.gates.fairness
    dpd, dpd_at = _worst(views, "demographic_parity_difference", max)
    eod, eod_at = _worst(views, "equalized_odds_difference", max)
    dir_, dir_at = _worst(views, "disparate_impact_ratio", min)
    dpd_bound, dpd_bound_at = _worst(views, "demographic_parity_difference_bound", max)
    eod_bound, eod_bound_at = _worst(views, "equalized_odds_difference_bound", max)
    bounded = cfg.confidence is not None
    return [
        Check(
            "demographic_parity_difference",
            dpd,
            cfg.max_demographic_parity_difference,
            "max",
            f"selection rates differ most across {dpd_bound_at if bounded else dpd_at}",
            bound=dpd_bound if bounded else None,
            confidence=cfg.confidence,
        ),
        Check(
            "equalized_odds_difference",
            eod,
            cfg.max_equalized_odds_difference,
            "max",
            f"true/false-positive rates differ most across {eod_bound_at if bounded else eod_at}",
            bound=eod_bound if bounded else None,
            confidence=cfg.confidence,
        ),
        Check(
            "disparate_impact_ratio",
            dir_,
            cfg.min_disparate_impact_ratio,
            "min",
            f"lowest over highest selection rate across {dir_at}",
        ),
    ]


def _prefit(model: ServedModel) -> Any:
    """The booster as the fitted scikit-learn classifier fairlearn's ThresholdOptimizer expects."""
    import numpy as np
    from sklearn.base import BaseEstimator, ClassifierMixin

    class Prefit(ClassifierMixin, BaseEstimator):
        def __init__(self) -> None:
            self.classes_ = np.array([0, 1])
            self.fitted_ = True

        def fit(self, X: Any, y: Any) -> Prefit:  # noqa: N803  # scikit-learn's names
            return self

        def predict_proba(self, X: Any) -> Any:  # noqa: N803
            p = model.predict_frame(X).astype("float64")  # fairlearn writes float64 into this dtype
            return np.column_stack([1 - p, p])

        def predict(self, X: Any) -> Any:  # noqa: N803
            return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)

    return Prefit()


def mitigate(spec: ModelSpec, model: ServedModel, split: Split) -> tuple[np.ndarray, dict[str, Any]]:
    """Fit fairlearn's ThresholdOptimizer on the validation set; returns (test decisions, the decision policy).

    The policy maps each group (the fairness attributes joined by `` & ``) to two thresholds and the probability of
    using the first: serving draws that choice from a stable hash of the request, so it is reproducible.
    """
    import numpy as np
    from fairlearn.postprocessing import ThresholdOptimizer

    cfg = spec.gates.fairness
    attrs = list(cfg.mitigation_attributes or spec.fairness_attributes)
    features = spec.data_schema.feature_names
    valid, test = split.valid, split.test
    # A group with no positive or no negative in the validation set cannot have thresholds fitted for it (its ROC
    # curve is degenerate): it keeps the global threshold, as serving does for a group the policy lacks.
    key_valid = valid[attrs].astype(str).agg(",".join, axis=1)
    y_valid = valid[LABEL].to_numpy()
    need = 1
    fit = [
        g
        for g in key_valid.unique()
        if min(int(y_valid[(key_valid == g).to_numpy()].sum()), int((1 - y_valid[(key_valid == g).to_numpy()]).sum()))
        >= need
    ]
    if not fit:
        raise ValueError(
            f"no group of {', '.join(attrs)} has positives and negatives enough in the validation set "
            f"({need} each) to fit thresholds for: mitigation cannot run"
        )
    in_fit = key_valid.isin(fit).to_numpy()
    opt = ThresholdOptimizer(
        estimator=_prefit(model),
        constraints=cfg.mitigation_constraint,
        objective="balanced_accuracy_score" if cfg.mitigation_constraint == "equalized_odds" else "accuracy_score",
        predict_method="predict_proba",
        prefit=True,
    )
    opt.fit(valid.loc[in_fit, features], y_valid[in_fit], sensitive_features=valid.loc[in_fit, attrs].astype(str))
    key_test = test[attrs].astype(str).agg(",".join, axis=1)
    known = key_test.isin(fit).to_numpy()
    decided = (model.predict_frame(test) >= spec.gates.decision_threshold).astype("int8")
    if known.any():
        decided[known] = opt.predict(
            test.loc[known, features], sensitive_features=test.loc[known, attrs].astype(str), random_state=0
        )
    policy: dict[str, Any] = {
        "kind": "threshold_optimizer",
        "constraint": cfg.mitigation_constraint,
        "attributes": attrs,
        "groups": {},
        "global_threshold_for": sorted(set(key_valid) - set(fit)),
    }
    for group, rule in opt.interpolated_thresholder_.interpolation_dict.items():
        policy["groups"][str(group).replace(",", SEP)] = {
            "p0": float(rule["p0"]),
            "operation0": _op(rule["operation0"]),
            "p1": float(rule["p1"]),
            "operation1": _op(rule["operation1"]),
        }
    return np.asarray(decided, dtype="int8"), policy


def _op(operation: Any) -> dict[str, Any]:
    # Scores are probabilities, so an infinite threshold ("always" / "never") is the same as one just outside
    # [0, 1]; JSON has no infinity.
    return {"operator": str(operation.operator), "threshold": min(2.0, max(-1.0, float(operation.threshold)))}


def fairness_gate(spec: ModelSpec, model: ServedModel, split: Split) -> GateResult:
    """Judge the test-set decisions per group; with mitigation on, judge the mitigated ones and report both."""
    from ativo.evaluate.performance import decisions

    cfg = spec.gates.fairness
    if not spec.fairness_attributes:
        return GateResult(
            gate="fairness", passed=True, reason="the spec names no protected attribute: nothing to judge"
        )
    base = decisions(spec, model.predict_frame(split.test))
    before = group_metrics(spec, split.test, base)
    checks = _checks(spec, before)
    details: dict[str, Any] = {
        "views": before,
        "min_group_size": cfg.min_group_size,
        "min_group_labels": cfg.min_group_labels,
    }
    short = insufficient(spec, before)
    if short:
        from ativo.evaluate.results import INSUFFICIENT

        result = GateResult.judge("fairness", checks, ok=_ok(checks), details=details)
        result.passed = False
        result.reason = INSUFFICIENT + "; ".join(short)
        return result
    if cfg.mitigation == "none":
        return GateResult.judge("fairness", checks, ok=_ok(checks), details=details)
    mitigated, policy = mitigate(spec, model, split)
    after = group_metrics(spec, split.test, mitigated)
    after_checks = _checks(spec, after)
    y = split.test[LABEL].to_numpy()
    details.update(
        mitigation={
            "kind": cfg.mitigation,
            "constraint": cfg.mitigation_constraint,
            "policy": policy,
            "before": {c.name: c.value for c in checks},
            "after": {c.name: c.value for c in after_checks},
            "accuracy_before": float((base == y).mean()),
            "accuracy_after": float((mitigated == y).mean()),
            "views_after": after,
        }
    )
    result = GateResult.judge("fairness", after_checks, ok=_ok(after_checks) + " after mitigation", details=details)
    result.reason += (
        " (with the threshold-optimizer decision policy; before: "
        + ("; ".join(c.failure() for c in checks if not c.passed) or "also within the thresholds")
        + ")"
    )
    result.metrics.update({f"{c.name}_before_mitigation": c.value for c in checks})
    return result


def _ok(checks: list[Check]) -> str:
    return ", ".join(f"{c.name} {c.shown()}" for c in checks if c.value is not None)
