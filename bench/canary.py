"""Benchmark: the canary watch's decisions on replayed traffic — false promotions, false rollbacks, time to decide.

The reference spec's champion (its own configuration, trained on the pinned split of the UCI Adult reference data)
serves the test rows, drawn at random, as single-row calls at ``--rate`` requests a second; ``canary_percent`` of them
go to the candidate. Every ``watch_interval_seconds`` the watch's own :func:`ativo.deploy.watch.judge` is given the
figures the servers' ``/metrics`` would show since the trial began, as the server counts them (rows, failed rows and
failed calls, score and latency histograms with the serving buckets; a call the candidate fails is answered by the
champion and counted on its side, and has no candidate latency) and, after ``--label-delay`` seconds, each answered
row's true label (AUC and DeLong's standard error per side, as :func:`ativo.deploy.watch.label_figures` reads them).
The first decided verdict ends the canary; the window (``canary_window_minutes``) is its longest wait. Scores are the
models' real scores of those rows; latencies are drawn from each model's measured single-row scoring times.

Cases (each canary draws its own traffic, routing and latencies; how far each candidate is from the champion on
every test row is reported as ``known_amounts``):

- **sound** (a promotion is right; a rollback for harm is a false rollback): ``aa`` (retrainings of the champion's
  configuration with other seeds), ``aa_labels`` (the same with ``await_labels``), and sound but near a limit:
  ``errors_sound`` (0.5 % of calls fail; limit 1 %), ``slow_sound`` (0.5 % of calls 100 ms slower; the p99 budget
  allows 1 %), ``shifted_sound`` (``scale_pos_weight`` 3.5: score PSI well within the limit).
- **harmful** (a rollback for harm is right; a promotion is a false promotion): ``errors`` (5 % of calls fail),
  ``slow`` (5 % of calls 100 ms slower), ``shifted`` (``scale_pos_weight`` 20: PSI ~0.55 against 0.2),
  ``shifted_near`` (``scale_pos_weight`` 6: PSI just beyond the limit), ``worse_auc`` (four informative features
  blanked: AUC ~0.07 below the champion's, with ``await_labels``).
- **at the limit** (``errors_at_limit``: exactly 1 % of calls fail): both a promotion and a rollback for harm are
  errors (each test's null includes its boundary).

Reported per case: promotions, rollbacks for harm, undecided at the window (rolled back for lack of evidence, without
a page), the median time and canary rows to a right decision, and its error rate with a 95 % Clopper-Pearson upper
bound. Overall: ``false_promotion_rate`` (promotions over harmful and at-limit canaries) and ``false_rollback_rate``
(rollbacks for harm over sound and at-limit canaries), and the worst single case of each. A fixed-window design
promotes at the end of its window by construction: ``median_decision_s_fixed_window`` is that window, against
``median_promotion_s`` here.

Usage: ``.venv/bin/python bench/canary.py [--canaries N] [--rate R] [--label-delay S] [--seed S] [--smoke]``
(default 480 canaries, weighted 3 : 2 : 1 … for ``aa``, ``aa_labels`` and each other case; ``--smoke``: 14). The
last line is one JSON object with ``alpha``, ``canaries``, ``false_promotion_rate``, ``false_rollback_rate``,
``median_decision_s``, ``median_decision_s_fixed_window`` and ``cases``.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))  # verdicts
os.environ.setdefault("ATIVO_REFERENCE_DIR", str(ROOT / "var" / "reference"))


def _arg(name: str, default: float) -> float:
    return float(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else default


SMOKE = "--smoke" in sys.argv
CANARIES = int(_arg("--canaries", 13 if SMOKE else 480))
RATE = _arg("--rate", 50.0)  # requests a second to the service, champion and canary together
LABEL_DELAY_S = _arg("--label-delay", 120.0)
SEED = int(_arg("--seed", 0))
# case → (weight, kind, awaits labels, error share, slow share, model); kind: sound, harmful or at_limit
CASES: dict[str, tuple[int, str, bool, float, float, str]] = {
    "aa": (3, "sound", False, 0.0, 0.0, "aa"),
    "aa_labels": (2, "sound", True, 0.0, 0.0, "aa"),
    "errors_sound": (1, "sound", False, 0.005, 0.0, "same"),
    "slow_sound": (1, "sound", False, 0.0, 0.005, "same"),
    "shifted_sound": (1, "sound", False, 0.0, 0.0, "shifted_sound"),
    "errors": (1, "harmful", False, 0.05, 0.0, "same"),
    "slow": (1, "harmful", False, 0.0, 0.05, "same"),
    "shifted": (1, "harmful", False, 0.0, 0.0, "shifted"),
    "shifted_near": (1, "harmful", False, 0.0, 0.0, "shifted_near"),
    "worse_auc": (1, "harmful", True, 0.0, 0.0, "worse_auc"),
    "errors_at_limit": (1, "at_limit", False, 0.01, 0.0, "same"),
}
SLOW_EXTRA_S = 0.1
SHIFT_WEIGHTS = {"shifted_sound": 3.5, "shifted_near": 6.0, "shifted": 20.0}  # scale_pos_weight of each model


@dataclass
class Model:
    """A version as the replay needs it: its score of every test row and its measured scoring times."""

    scores: np.ndarray
    latency_s: np.ndarray


def _models(spec: Any, split: Any, n_aa: int) -> tuple[Model, dict[str, Model | list[Model]]]:
    """The champion, and by name: ``aa`` (``n_aa`` retrainings of its configuration), ``same`` (the first of them),
    the shifted models and the worse one."""
    import verdicts

    from ativo.data.features import LABEL

    base = int(spec.model.params.get("seed", 0))
    test = split.test

    def built(booster: Any, version: str) -> Model:
        served = verdicts.served_model(spec, booster, version)
        matrix = served.encode(test.drop(columns=[LABEL]).to_dict("records")[:400])
        times = []
        for i in range(len(matrix)):  # single-row scoring, as the API scores a request
            t = time.perf_counter()
            served.score(matrix[i : i + 1])
            times.append(time.perf_counter() - t)
        return Model(scores=np.asarray(served.predict_frame(test), dtype=float), latency_s=np.asarray(times))

    champion = built(verdicts.train_model(spec, split, base), "1")
    aa = [built(verdicts.train_model(spec, split, base + 1 + i), "2") for i in range(n_aa)]
    models: dict[str, Model | list[Model]] = {"aa": aa, "same": aa[0]}
    for i, (name, weight) in enumerate(SHIFT_WEIGHTS.items()):
        models[name] = built(verdicts.train_model(spec, split, base + 100 + i, scale_pos_weight=weight), "3")
    worse = verdicts.worse(spec, split, "performance", seed=base + 200)  # the informative features blanked
    assert worse is not None
    models["worse_auc"] = built(worse[0], "4")
    return champion, models


def _cumulative(values: np.ndarray, edges: tuple[float, ...]) -> dict[str, float]:
    """Prometheus' cumulative buckets of ``values`` (le → count, '+Inf' included)."""
    counts = np.searchsorted(np.sort(values), np.asarray(edges), side="right")
    out = {str(e): float(c) for e, c in zip(edges, counts, strict=True)}
    out["+Inf"] = float(len(values))
    return out


@dataclass
class Outcome:
    """How one canary ended: promoted (True), rolled back for harm (False) or undecided at the window (None)."""

    promoted: bool | None
    seconds: float
    canary_rows: float
    reason: str


def replay(
    spec: Any,
    champion: Model,
    candidate: Model,
    y: np.ndarray,
    rng: np.random.Generator,
    error_share: float = 0.0,
    slow_share: float = 0.0,
) -> Outcome:
    """One canary of single-row calls, watched until decided."""
    from ativo.api.metrics import LATENCY_BUCKETS, SCORE_BUCKETS
    from ativo.deploy.watch import judge
    from ativo.evaluate.intervals import auc_standard_error

    d = spec.deploy
    window = d.canary_window_minutes * 60
    n = int(RATE * window)
    arrival = np.sort(rng.uniform(0, window, n))
    rows = rng.integers(0, len(y), n)
    to_canary = rng.random(n) < d.canary_percent / 100
    failed = to_canary & (rng.random(n) < error_share)  # the champion answers these, as "champion" with fallback
    by_canary = to_canary & ~failed
    by_champion = ~by_canary
    score = np.where(by_canary, candidate.scores[rows], champion.scores[rows])
    latency = np.where(
        by_canary,
        rng.choice(candidate.latency_s, n) + SLOW_EXTRA_S * (rng.random(n) < slow_share),
        rng.choice(champion.latency_s, n),
    )
    label = y[rows]
    looks = np.arange(d.watch_interval_seconds, window + 1e-9, d.watch_interval_seconds)
    verdict = None
    for t in looks:
        upto = int(np.searchsorted(arrival, t, side="right"))
        labelled = int(np.searchsorted(arrival, t - LABEL_DELAY_S, side="right"))
        c, ch = by_canary[:upto], by_champion[:upto]
        figures = {
            "2/canary": {
                "rows": float(c.sum()),
                "errors": float(failed[:upto].sum()),
                "failed_calls": float(failed[:upto].sum()),  # single-row calls
                "scores": _cumulative(score[:upto][c], SCORE_BUCKETS),
                "latency": _cumulative(latency[:upto][c], LATENCY_BUCKETS),
            },
            "1/champion": {
                "rows": float(ch.sum()),
                "errors": 0.0,
                "failed_calls": 0.0,
                "scores": _cumulative(score[:upto][ch], SCORE_BUCKETS),
                "latency": _cumulative(latency[:upto][ch], LATENCY_BUCKETS),
            },
        }
        labels = {}
        for side, mask in (("candidate", by_canary[:labelled]), ("champion", by_champion[:labelled])):
            ys, ss = label[:labelled][mask], score[:labelled][mask]
            two = len(np.unique(ys)) == 2
            labels[side] = {
                "labels": float(len(ys)),
                "auc": _auc(ys, ss) if two else float("nan"),
                "se": auc_standard_error(ys, ss) if two else float("nan"),
            }
        verdict = judge(spec, figures, candidate="2", champion="1", route="canary", elapsed_s=float(t), labels=labels)
        if verdict.decided:
            promoted = None if verdict.undecided else verdict.promote
            return Outcome(promoted, float(t), figures["2/canary"]["rows"], verdict.reason)
    return Outcome(None, window, float(by_canary.sum()), verdict.reason if verdict else "no look")


def _known_amounts(champion: Model, models: dict[str, Any], y: np.ndarray) -> dict[str, float]:
    """How far each candidate is from the champion on the whole test split: score PSI on deciles, AUC change."""
    from ativo.deploy.watch import DECILES
    from ativo.monitor.stats import psi

    def deciles(s: np.ndarray) -> list[float]:
        return list(np.histogram(s, bins=(0.0, *DECILES))[0].astype(float))

    out: dict[str, float] = {}
    for name in ("same", *SHIFT_WEIGHTS, "worse_auc"):
        m = models[name]
        out[f"{name}_psi"] = round(float(psi(deciles(champion.scores), deciles(m.scores))), 4)
        out[f"{name}_auc_change"] = round(_auc(y, m.scores) - _auc(y, champion.scores), 4)
    return out


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s))


def _upper(k: int, n: int) -> float | None:
    from ativo.evaluate.intervals import proportion

    return round(proportion(k, n, 0.95).high, 4) if n else None


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def main() -> None:
    """Train the models, replay every canary, print a table and one JSON line."""
    from ativo.data.features import LABEL, to_features
    from ativo.data.landing import reference_records
    from ativo.data.split import split_frame
    from ativo.spec import get_spec

    started = time.perf_counter()
    spec = get_spec("adult_income", ROOT / "include" / "specs")
    raw = reference_records(spec, Path(os.environ["ATIVO_REFERENCE_DIR"]))
    raw[spec.data_schema.event_time] = "2026-01-01"
    split = split_frame(to_features(raw, spec), spec)
    unit = max(CANARIES / sum(c[0] for c in CASES.values()), 1)
    counts = {case: max(1, round(unit * c[0])) for case, c in CASES.items()}
    champion, models = _models(spec, split, min(8, counts["aa"] + counts["aa_labels"]))
    train_s = time.perf_counter() - started
    y = split.test[LABEL].to_numpy().astype(int)
    known = _known_amounts(champion, models, y)
    print(f"known amounts on every test row: {known}")
    print(f"models trained and scored in {train_s:.0f} s; replaying {sum(counts.values())} canaries at {RATE:g} req/s")
    rng = np.random.default_rng(SEED)
    results: dict[str, list[Outcome]] = {}
    for case, (_, _kind, labelled, error_share, slow_share, model) in CASES.items():
        case_spec = spec.model_copy(update={"deploy": spec.deploy.model_copy(update={"await_labels": labelled})})
        pool = models[model]
        results[case] = [
            replay(
                case_spec,
                champion,
                pool[i % len(pool)] if isinstance(pool, list) else pool,
                y,
                rng,
                error_share,
                slow_share,
            )
            for i in range(counts[case])
        ]
    replay_s = time.perf_counter() - started - train_s
    window = spec.deploy.canary_window_minutes * 60
    alpha = spec.deploy.alpha
    table: dict[str, dict[str, Any]] = {}
    right_s: list[float] = []
    promotion_s: list[float] = []
    fp = fp_n = fr = fr_n = 0
    for case, outs in results.items():
        kind = CASES[case][1]
        promoted = [o for o in outs if o.promoted is True]
        rolled = [o for o in outs if o.promoted is False]
        undecided = sum(1 for o in outs if o.promoted is None)
        right = promoted if kind == "sound" else rolled if kind == "harmful" else []
        right_s += [o.seconds for o in right]
        promotion_s += [o.seconds for o in promoted if kind == "sound"]
        row: dict[str, Any] = {
            "kind": kind,
            "canaries": len(outs),
            "promoted": len(promoted),
            "rolled_back_for_harm": len(rolled),
            "undecided_at_window": undecided,
            "median_decision_s": _median([o.seconds for o in right]),
            "median_decision_rows": _median([o.canary_rows for o in right]),
            "example": outs[0].reason[:200],
        }
        if kind in ("harmful", "at_limit"):
            fp, fp_n = fp + len(promoted), fp_n + len(outs)
            row["false_promotion_rate"] = round(len(promoted) / len(outs), 4)
            row["false_promotion_upper95"] = _upper(len(promoted), len(outs))
        if kind in ("sound", "at_limit"):
            fr, fr_n = fr + len(rolled), fr_n + len(outs)
            row["false_rollback_rate"] = round(len(rolled) / len(outs), 4)
            row["false_rollback_upper95"] = _upper(len(rolled), len(outs))
        table[case] = row
        med = row["median_decision_s"]
        print(
            f"  {case:16s} {kind:8s} {len(outs):4d}: promoted {len(promoted):3d}, rolled back for harm "
            f"{len(rolled):3d}, undecided {undecided:3d}; median right decision "
            + ("n/a" if med is None else f"{med:.0f} s on {row['median_decision_rows']:.0f} canary rows")
        )
    worst_fp = max((r.get("false_promotion_rate", 0.0) for r in table.values()), default=0.0)
    worst_fr = max((r.get("false_rollback_rate", 0.0) for r in table.values()), default=0.0)
    print(
        f"false promotions {fp}/{fp_n} ({fp / max(fp_n, 1):.1%}; worst case {worst_fp:.1%}), false rollbacks "
        f"{fr}/{fr_n} ({fr / max(fr_n, 1):.1%}; worst case {worst_fr:.1%}) at α {alpha:g}; median promotion of a "
        f"sound canary {_median(promotion_s) or float('nan'):.0f} s against {window:.0f} s for a fixed window; "
        f"replay {replay_s:.0f} s"
    )
    print(
        json.dumps(
            {
                "bench": "canary",
                "alpha": alpha,
                "canaries": sum(len(o) for o in results.values()),
                "rate_rps": RATE,
                "canary_percent": spec.deploy.canary_percent,
                "label_delay_s": LABEL_DELAY_S,
                "false_promotion_rate": round(fp / max(fp_n, 1), 4),
                "false_promotion_upper95": _upper(fp, fp_n),
                "false_promotion_worst_case": worst_fp,
                "false_rollback_rate": round(fr / max(fr_n, 1), 4),
                "false_rollback_upper95": _upper(fr, fr_n),
                "false_rollback_worst_case": worst_fr,
                "median_decision_s": _median(right_s),
                "median_promotion_s": _median(promotion_s),
                "median_decision_s_fixed_window": window,
                "cases": table,
                "known_amounts": known,
                "train_s": round(train_s, 1),
                "replay_s": round(replay_s, 1),
                "smoke": SMOKE,
            }
        )
    )


if __name__ == "__main__":
    main()
