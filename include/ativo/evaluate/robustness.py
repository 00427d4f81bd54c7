"""Robustness of a model's decisions under noise, a bounded evasion attack, and protected-attribute counterfactuals.

Three measurements: small realistic perturbations, a bounded black-box evasion attack, and counterfactuals that
change only a protected attribute.
Everything runs on the encoded matrix serving scores (categories as codes), scored by serving's own scorer
(:meth:`ServedModel.score`: XGBoost's in-place prediction, the same scores as a DMatrix's bit for bit, without a
DMatrix built for each of the attack's ~125 black-box calls a row), so what is measured is what serving would
decide. Mutable features are the numeric ones that are neither protected nor listed as immutable.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ativo.evaluate.intervals import Interval, needed_rows, proportion
from ativo.evaluate.results import Check, GateResult
from ativo.spec import ModelSpec

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from ativo.data.split import Split
    from ativo.model.served import ServedModel

log = logging.getLogger(__name__)


@dataclass
class FeatureSpace:
    """Column layout of the encoded matrix: which columns may move, their bounds and scales."""

    names: list[str]
    mutable: list[int]  # column indices an attacker or noise may change
    integer: np.ndarray  # bool per column
    low: np.ndarray
    high: np.ndarray
    std: np.ndarray  # per column, from the training rows (1 for categories)


def feature_space(spec: ModelSpec, train: pd.DataFrame) -> FeatureSpace:
    """Bounds from the schema (else the training data), scales from the training rows."""
    import numpy as np

    fixed = set(spec.protected_attributes) | set(spec.gates.robustness.immutable)
    features = spec.data_schema.features
    low, high, std = [], [], []
    for f in features:
        if f.type == "category":
            low.append(0.0)
            high.append(float(len(f.categories or ()) - 1))
            std.append(1.0)
            continue
        col = train[f.name].astype("float64")
        low.append(float(f.min) if f.min is not None else float(col.min()))
        high.append(float(f.max) if f.max is not None else float(col.max()))
        std.append(float(col.std()) or 1.0)
    return FeatureSpace(
        names=[f.name for f in features],
        mutable=[i for i, f in enumerate(features) if f.type != "category" and f.name not in fixed],
        integer=np.array([f.type == "int" for f in features]),
        low=np.array(low),
        high=np.array(high),
        std=np.array(std),
    )


def _perturb(x: np.ndarray, space: FeatureSpace, columns: list[int], r: float, rng: Any) -> np.ndarray:
    import numpy as np

    xp = x.astype("float64").copy()
    for j in columns:
        u = rng.uniform(-r, r, size=len(xp))
        delta = np.nan_to_num(xp[:, j]) * u
        if space.integer[j]:
            delta = np.sign(u) * np.maximum(1.0, np.round(np.abs(delta)))
        xp[:, j] = np.clip(xp[:, j] + delta, space.low[j], space.high[j])
    return xp.astype("float32")


def perturbation_flip_rates(
    spec: ModelSpec, model: ServedModel, x: np.ndarray, space: FeatureSpace, draws: int = 3, seed: int = 0
) -> tuple[float, dict[str, float]]:
    """Decision flip rates under relative noise: on all mutable features at once, and on each one alone.

    A rate is the share of (row, draw) pairs whose decision changes; the per-feature rates show which feature the
    decisions hang on.

    Each mutable feature moves by ``x * u`` with ``u ~ U(-r, r)``; an integer moves by at least one unit in that
    direction (a person's age or weekly hours change in whole units), and everything stays within its bounds.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    r = spec.gates.robustness.perturbation
    thr = spec.gates.decision_threshold
    base = model.score(x) >= thr

    def rate(columns: list[int]) -> float:
        flips = sum(
            int(((model.score(_perturb(x, space, columns, r, rng)) >= thr) != base).sum()) for _ in range(draws)
        )
        return flips / (draws * len(x))

    return rate(space.mutable), {space.names[j]: rate([j]) for j in space.mutable}


def evasion_attack(
    spec: ModelSpec, model: ServedModel, x: np.ndarray, space: FeatureSpace, seed: int = 0
) -> dict[str, Any]:
    """ART's HopSkipJump (decision-only, L-infinity) on the mutable features, in standard-deviation units.

    An attack succeeds on a row when, after rounding integers and clipping to the schema's bounds, the decision
    flips while no feature moved more than ``attack_epsilon`` standard deviations.
    """
    import warnings

    import numpy as np

    with warnings.catch_warnings():  # ART warns that PyTorch is absent; its black-box attacks do not need it
        warnings.simplefilter("ignore", UserWarning)
        from art.attacks.evasion import HopSkipJump
        from art.estimators.classification import BlackBoxClassifier
    from ativo.logs import quiet_third_party

    quiet_third_party()  # ART logs its success rate for every batch of samples: the gate reports one figure
    cfg = spec.gates.robustness
    thr = spec.gates.decision_threshold
    if not space.mutable:
        return {"success_rate": 0.0, "attacked": 0, "note": "no mutable numeric feature to attack"}
    xf = np.nan_to_num(x.astype("float64"), nan=0.0)  # the attack needs finite inputs; NaN codes stay masked
    missing = np.isnan(x)
    mean = xf.mean(axis=0)
    mean[[j for j in range(x.shape[1]) if j not in space.mutable]] = 0.0
    std = np.ones(x.shape[1])
    std[space.mutable] = space.std[space.mutable]
    z = (xf - mean) / std
    zlow, zhigh = (space.low - mean) / std, (space.high - mean) / std

    row_missing = np.zeros(x.shape[1], dtype=bool)  # the attacked row's missing values, restored in every query

    def decode(zz: np.ndarray, holes: np.ndarray | None = None) -> np.ndarray:
        out = zz * std + mean
        out[:, space.integer] = np.round(out[:, space.integer])
        out = np.clip(out, space.low, space.high).astype("float32")
        out[np.broadcast_to(row_missing if holes is None else holes, out.shape)] = np.nan
        return out

    def predict(zz: np.ndarray) -> np.ndarray:
        p = model.score(decode(zz)).astype("float64")
        hard = (p >= thr).astype("float64")
        return np.column_stack([1 - hard, hard])  # decision only: a black box that says yes or no

    classifier = BlackBoxClassifier(
        predict, input_shape=(x.shape[1],), nb_classes=2, clip_values=(zlow.astype("float64"), zhigh.astype("float64"))
    )
    mask = np.zeros((1, x.shape[1]))
    mask[0, space.mutable] = 1.0
    np.random.seed(seed)  # HopSkipJump draws from numpy's global generator
    attack = HopSkipJump(
        classifier, norm=np.inf, max_iter=8, max_eval=400, init_eval=40, init_size=50, batch_size=512, verbose=False
    )
    adv = np.empty_like(z)
    for i in range(len(z)):  # one row at a time, so that every query of the black box is that row's
        row_missing[:] = missing[i]
        adv[i] = attack.generate(z[i : i + 1], mask=mask)[0]
    before = model.score(x) >= thr
    x_adv = decode(adv, missing)
    after = model.score(x_adv) >= thr
    moved = np.abs(np.nan_to_num(x_adv.astype("float64")) - xf)[:, space.mutable] / space.std[space.mutable]
    distance = moved.max(axis=1)
    success = (after != before) & (distance <= cfg.attack_epsilon + 1e-9)
    return {
        "success_rate": float(success.mean()),
        "attacked": len(x),
        "flipped_at_any_distance": float((after != before).mean()),
        "median_distance_std": float(np.median(distance[after != before])) if (after != before).any() else None,
        "epsilon_std": cfg.attack_epsilon,
        "mutable_features": [space.names[j] for j in space.mutable],
    }


def counterfactual_flip_rates(spec: ModelSpec, model: ServedModel, x: np.ndarray) -> dict[str, float]:
    """Per protected attribute: share of rows whose decision changes when only that attribute takes another value."""
    import numpy as np

    thr = spec.gates.decision_threshold
    base = model.score(x) >= thr
    names = spec.data_schema.feature_names
    out = {}
    for attr in spec.protected_attributes:
        j = names.index(attr)
        feature = spec.data_schema.feature(attr)
        changed = np.zeros(len(x), dtype=bool)
        if feature.type == "category":
            for code in range(len(feature.categories or ())):
                xc = x.copy()
                xc[:, j] = code
                changed |= ((model.score(xc) >= thr) != base) & (x[:, j] != code)
        else:
            for value in (feature.min, feature.max):
                if value is not None:
                    xc = x.copy()
                    xc[:, j] = value
                    changed |= (model.score(xc) >= thr) != base
        out[attr] = float(changed.mean())
    return out


def robustness_gate(spec: ModelSpec, model: ServedModel, split: Split) -> GateResult:
    """Perturbation flip rate, evasion success within bounds, counterfactual flip rate, on test rows."""
    cfg = spec.gates.robustness
    space = feature_space(spec, split.train)
    rows = split.test.sample(min(cfg.samples, len(split.test)), random_state=0)
    x = model.encode_frame(rows)
    flip, per_feature = perturbation_flip_rates(spec, model, x, space)
    brittle = max(per_feature, key=lambda f: per_feature[f]) if per_feature else "none"
    attack = evasion_attack(spec, model, x[: cfg.attack_samples], space)
    cf = counterfactual_flip_rates(spec, model, x)
    worst_attr = max(cf, key=lambda a: cf[a]) if cf else None
    confidence = spec.gates.confidence

    def rate(name: str, value: float, rows: int, limit: float | None, explain: str) -> Check:
        """A share of rows, judged on its exact interval over the rows (a row's draws are not independent)."""
        interval = proportion(round(value * rows), rows, confidence)
        interval = Interval(value, interval.low, interval.high, rows, confidence)  # the value as measured
        needed = needed_rows(limit, confidence) if limit is not None else None
        return Check.bounded(name, interval, limit, "max", explain, needed_rows=needed)

    checks = [
        rate(
            "perturbation_flip_rate",
            flip,
            len(x),
            cfg.max_flip_rate,
            f"decisions that change under ±{cfg.perturbation:.0%} noise on the numeric features; "
            f"{brittle} alone flips {per_feature.get(brittle, 0):.1%}",
        ),
        rate(
            "attack_success_rate",
            attack["success_rate"],
            attack["attacked"],
            cfg.max_attack_success,
            f"rows an evasion attack flips moving no feature more than {cfg.attack_epsilon} standard deviations",
        ),
        rate(
            "counterfactual_flip_rate",
            cf[worst_attr] if worst_attr else 0.0,
            len(x),
            cfg.max_counterfactual_flip_rate,
            f"decisions that change when only {worst_attr} changes",
        ),
    ]
    return GateResult.judge(
        "robustness",
        checks,
        ok=f"{flip:.1%} of decisions flip under noise, the attack succeeds on {attack['success_rate']:.0%} of "
        f"{attack['attacked']} rows within its budget, {max(cf.values(), default=0):.1%} flip on a protected "
        "attribute",
        details={"attack": attack, "counterfactual": cf, "rows": len(rows), "flip_rate_by_feature": per_feature},
    )
