"""Verdict stability and power of the gates: does retraining the same model on the same data give the same verdict,
and does a model made worse by a known amount fail the gate meant to catch it?

Used by ``bench/gates.py`` (``--stability N``), on the reference data's pinned split, training the spec's own
configuration (its ``model.params``: the configuration a search starts from) with the trainer every trial uses:

- **reference**: trained on the whole training split with the spec's seed; its verdict per gate is the reference
  verdict, and it is the champion the ``champion`` gate compares with.
- **flip rate** (per gate): ``N`` retrainings, each on the training split minus one random row and with another
  seed; the share whose verdict differs from the reference verdict (≤ 1 % is the target).
- **A/A rejection** (per gate): the share of those same retrainings the gate rejects — models of the reference's
  quality, so every rejection is a false one (≤ 5 %); for ``champion`` each retraining is judged against the
  reference as champion.
- **power** (per gate): ``N`` models made worse, each in the way its gate exists to catch, by a known amount, each
  with another seed; the share the gate rejects (≥ 90 %):

  - performance: the four most informative features blanked (``relationship``, ``marital_status``,
    ``capital_gain``, ``education``): test AUC falls from ~0.93 to below the spec's ``min_auc``;
  - champion: the same blanked model against the reference as champion (an AUC deficit far beyond the tolerance);
  - fairness: women's training labels set to 0 for a third of their positives and men's raised (a label that leaks
    through ``sex``, as ``tests/model/test_gates.py`` builds it);
  - robustness: labels that follow ``hours_per_week > 40`` (decisions hanging on one brittle feature);
  - privacy: a deep, unregularised model memorising 400 training rows;
  - explainability: not applicable (TreeSHAP's additivity is the booster's arithmetic: no model fails it).

The infra gate (timing on this host) and the regression gate (recorded incidents; none here) are not sampled.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

GATES = ("performance", "champion", "fairness", "robustness", "privacy", "explainability")
BLANKED = ("relationship", "marital_status", "capital_gain", "education")


def served_model(spec: Any, booster: Any, version: str) -> Any:
    from ativo.model.served import ServedModel

    return ServedModel(spec=spec, name=spec.name, version=version, booster=booster, sha256="")


def train_model(spec: Any, split: Any, seed: int, **overrides: Any) -> Any:
    from ativo.train.trainer import fit

    return fit(spec, split, overrides={"seed": seed, **overrides}, threads=2).booster


def replace_parts(split: Any, part_fn: Callable[[Any], Any], parts: tuple[str, ...] = ("train", "valid")) -> Any:
    from ativo.data.split import Split

    frames = {p: getattr(split, p) for p in ("train", "valid", "test")}
    for p in parts:
        frames[p] = part_fn(frames[p].copy())
    return Split(**frames)


def judge(spec: Any, model: Any, split: Any, champion: Any, only: tuple[str, ...] = GATES) -> dict[str, bool]:
    """Each gate's verdict (passed) on ``model``, as the suite's gate functions give it."""
    from ativo.evaluate.explain import explainability_gate
    from ativo.evaluate.fairness import fairness_gate
    from ativo.evaluate.performance import champion_gate, performance_gate
    from ativo.evaluate.privacy import privacy_gate
    from ativo.evaluate.robustness import robustness_gate

    run = {
        "performance": lambda: performance_gate(spec, model, split),
        "champion": lambda: champion_gate(spec, model, split, champion),
        "fairness": lambda: fairness_gate(spec, model, split),
        "robustness": lambda: robustness_gate(spec, model, split),
        "privacy": lambda: privacy_gate(spec, model, split),
        "explainability": lambda: explainability_gate(spec, model, split),
    }
    return {g: run[g]().passed for g in only}


def worse(spec: Any, split: Any, gate: str, seed: int) -> tuple[Any, Any] | None:
    """A model made worse in the way ``gate`` catches (with the split it is judged on), or None: not applicable."""
    from ativo.data.features import LABEL
    from ativo.data.split import Split

    rng = np.random.default_rng(seed)
    if gate in ("performance", "champion"):

        def blank(f: Any) -> Any:
            for c in BLANKED:
                f[c] = f[c].iloc[0]  # one value for every row: the feature says nothing
            return f

        return train_model(spec, replace_parts(split, blank), seed), split
    if gate == "fairness":

        def leak(f: Any) -> Any:
            male = f["sex"] == "Male"
            f[LABEL] = np.where(male, f[LABEL] | (rng.random(len(f)) < 0.3), f[LABEL]).astype("int8")
            return f

        return train_model(spec, replace_parts(split, leak), seed), split
    if gate == "robustness":

        def brittle(f: Any) -> Any:
            f[LABEL] = (f["hours_per_week"] > 40).astype("int8")
            return f

        return train_model(spec, replace_parts(split, brittle), seed), split
    if gate == "privacy":
        small = Split(train=split.train.sample(400, random_state=seed), valid=split.valid, test=split.test)
        deep = {"max_depth": 12, "min_child_weight": 0, "eta": 0.3, "subsample": 1.0, "colsample_bytree": 1.0}
        return train_model(spec, small, seed, reg_lambda=0, **deep), small
    return None


def measure(spec: Any, split: Any, n: int, seed: int = 0, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Flip rate, A/A rejection and power per gate over ``n`` retrainings and ``n`` worse models each."""
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    base_seed = int(spec.model.params.get("seed", 0))
    reference = served_model(spec, train_model(spec, split, base_seed), "1")
    verdict = judge(spec, reference, split, None)
    log(f"reference: {verdict}")
    flips = {g: 0 for g in GATES}
    rejects = {g: 0 for g in GATES}
    for i in range(n):
        drop = int(rng.integers(0, len(split.train)))
        minus_one = replace_parts(split, lambda f, d=drop: f.drop(f.index[d]), parts=("train",))
        model = served_model(spec, train_model(spec, minus_one, base_seed + 1 + i), "2")
        got = judge(spec, model, split, reference)
        for g in GATES:
            flips[g] += got[g] != verdict[g]
            rejects[g] += not got[g]
        log(f"retraining {i + 1}/{n} (row {drop} left out, seed {base_seed + 1 + i}): {got}")
    power: dict[str, float | None] = {}
    for g in GATES:
        caught = tried = 0
        for i in range(n):
            built = worse(spec, split, g, seed=1000 + i)
            if built is None:
                break
            booster, judged_on = built
            tried += 1
            caught += not judge(spec, served_model(spec, booster, "3"), judged_on, reference, only=(g,))[g]
        power[g] = caught / tried if tried else None
        log(f"power of {g}: {'n/a' if power[g] is None else f'{caught}/{tried}'}")
    flip_rate = {g: flips[g] / n for g in GATES}
    aa = {g: rejects[g] / n for g in GATES}
    powers = [p for p in power.values() if p is not None]
    return {
        "stability_n": n,
        "reference_verdict": verdict,
        "flip_rate": flip_rate,
        "aa_reject": aa,
        "power": power,
        "flip_rate_max": max(flip_rate.values()),
        "aa_reject_max": max(aa.values()),
        "power_min": min(powers) if powers else None,
        "stability_s": round(time.perf_counter() - started, 1),
    }
