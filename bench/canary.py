"""Benchmark: the canary watch's decisions on replayed traffic — false promotions, false rollbacks, time to decide.

The reference spec's champion (its own configuration, trained on the pinned split of the UCI Adult reference data)
serves the test rows, drawn at random, as traffic at ``--rate`` requests a second; ``canary_percent`` of them go to
the candidate. Every ``watch_interval_seconds`` the watch's own :func:`ativo.deploy.watch.judge` is given the figures
the servers' ``/metrics`` would show since the trial began (rows, errors, score and latency histograms with the
serving buckets) and, after ``--label-delay`` seconds, each scored row's true label (AUC and DeLong's standard error
per side, as :func:`ativo.deploy.watch.label_figures` reads them); the first decided verdict ends the canary, and the
window (``canary_window_minutes``) is its longest wait. Scores are the models' real scores of those rows; scoring
latencies are drawn from each model's measured single-row scoring times.

Cases (each canary draws its own traffic, routing and latencies):

- **A/A** (``aa``): retrainings of the champion's configuration with other seeds — of its quality, so a rollback is
  a false one; ``aa_labels``: the same with ``await_labels`` (promotion waits for the AUC to be shown within
  ``max_auc_drop``).
- **A/B**, each beyond one limit by a known amount (measured on every test row and reported as ``known_amounts``),
  so a promotion is a false one: ``errors`` (5 % of rows fail to score; limit 1 %), ``slow`` (5 % of calls take
  100 ms more; p99 budget 50 ms), ``shifted`` (trained with ``scale_pos_weight`` 20: score PSI ~0.55 against the
  limit 0.2), ``shifted_near`` (``scale_pos_weight`` 6: PSI just beyond the limit, the hardest case for a
  promotion), ``worse_auc`` (four informative features blanked: AUC ~0.07 below the champion's, with
  ``await_labels``).
- **At the limit** (``errors_at_limit``: exactly 1 % of rows fail): a promotion counts as false, and a rollback is
  reported apart (it is neither false nor a correct catch).

Reported per case: promotions, rollbacks for harm, undecided at the window (rolled back for lack of evidence), and
the median time to a correct decision; overall the false-promotion rate (over A/B canaries) and the false-rollback
rate (over A/A canaries), each with its 95 % Clopper-Pearson upper bound. A fixed-window design decides at the end of
its window by construction: ``median_decision_s_fixed_window`` is that window.

Usage: ``.venv/bin/python bench/canary.py [--canaries N] [--rate R] [--label-delay S] [--seed S] [--smoke]``
(default 480 canaries: 160 A/A, 80 A/A with labels, 40 per other case; ``--smoke``: 14 canaries). The last line is one
JSON object with ``alpha``, ``canaries``, ``false_promotion_rate``, ``false_rollback_rate``, ``median_decision_s``,
``median_decision_s_fixed_window`` and ``cases``.
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
CANARIES = int(_arg("--canaries", 12 if SMOKE else 480))
RATE = _arg("--rate", 50.0)  # requests a second to the service, champion and canary together
LABEL_DELAY_S = _arg("--label-delay", 120.0)
SEED = int(_arg("--seed", 0))
SHARES = {
    "aa": 1 / 3,
    "aa_labels": 1 / 6,
    **dict.fromkeys(("errors", "errors_at_limit", "slow", "shifted", "shifted_near", "worse_auc"), 1 / 12),
}
HARMFUL = ("errors", "errors_at_limit", "slow", "shifted", "shifted_near", "worse_auc")
AT_LIMIT = ("errors_at_limit",)  # neither decision is right: a rollback is counted apart, not as a correct one
ERROR_SHARE, SLOW_SHARE, SLOW_EXTRA_S = 0.05, 0.05, 0.1
SHIFT_WEIGHT = 20.0  # scale_pos_weight of the shifted model: its scores move far beyond max_score_psi
NEAR_SHIFT_WEIGHT = 6.0  # ... and of the one just beyond it


@dataclass
class Model:
    """A version as the replay needs it: its score of every test row and its measured scoring times."""

    scores: np.ndarray
    latency_s: np.ndarray
    error_share: float = 0.0
    slow_share: float = 0.0


def _models(spec: Any, split: Any, n_aa: int) -> tuple[Model, list[Model], dict[str, Model]]:
    """The champion, ``n_aa`` retrainings of its configuration, and one model per A/B case."""
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

    def blank(f: Any) -> Any:
        for c in verdicts.BLANKED:
            f[c] = f[c].iloc[0]
        return f

    same = aa[0]
    cases = {
        "errors": Model(same.scores, same.latency_s, error_share=ERROR_SHARE),
        "errors_at_limit": Model(same.scores, same.latency_s, error_share=spec.deploy.max_error_rate),
        "slow": Model(same.scores, same.latency_s, slow_share=SLOW_SHARE),
        "shifted": built(verdicts.train_model(spec, split, base + 100, scale_pos_weight=SHIFT_WEIGHT), "3"),
        "shifted_near": built(verdicts.train_model(spec, split, base + 300, scale_pos_weight=NEAR_SHIFT_WEIGHT), "5"),
        "worse_auc": built(verdicts.train_model(spec, verdicts.replace_parts(split, blank), base + 200), "4"),
    }
    return champion, aa, cases


def _cumulative(values: np.ndarray, edges: tuple[float, ...]) -> dict[str, float]:
    """Prometheus' cumulative buckets of ``values`` (le → count, '+Inf' included)."""
    counts = np.searchsorted(np.sort(values), np.asarray(edges), side="right")
    out = {str(e): float(c) for e, c in zip(edges, counts, strict=True)}
    out["+Inf"] = float(len(values))
    return out


def replay(
    spec: Any, champion: Model, candidate: Model, y: np.ndarray, rng: np.random.Generator
) -> tuple[bool | None, float, str]:
    """One canary, watched until decided: (promoted; None when undecided at the window, seconds, reason)."""
    from ativo.api.metrics import LATENCY_BUCKETS, SCORE_BUCKETS
    from ativo.deploy.watch import judge
    from ativo.evaluate.intervals import auc_standard_error

    d = spec.deploy
    window = d.canary_window_minutes * 60
    n = int(RATE * window)
    arrival = np.sort(rng.uniform(0, window, n))
    rows = rng.integers(0, len(y), n)
    to_canary = rng.random(n) < d.canary_percent / 100
    failed = to_canary & (rng.random(n) < candidate.error_share)  # the champion answers these
    served_by_canary = to_canary & ~failed
    score = np.where(served_by_canary, candidate.scores[rows], champion.scores[rows])
    latency = np.where(
        to_canary,
        rng.choice(candidate.latency_s, n) + SLOW_EXTRA_S * (rng.random(n) < candidate.slow_share),
        rng.choice(champion.latency_s, n),
    )
    label = y[rows]
    looks = np.arange(d.watch_interval_seconds, window + 1e-9, d.watch_interval_seconds)
    verdict = None
    for t in looks:
        upto = int(np.searchsorted(arrival, t, side="right"))
        labelled = int(np.searchsorted(arrival, t - LABEL_DELAY_S, side="right"))
        c, ch = served_by_canary[:upto], ~to_canary[:upto]
        figures = {
            "2/canary": {
                "rows": float(c.sum()),
                "errors": float(failed[:upto].sum()),
                "scores": _cumulative(score[:upto][c], SCORE_BUCKETS),
                "latency": _cumulative(latency[:upto][to_canary[:upto]], LATENCY_BUCKETS),
            },
            "1/champion": {
                "rows": float(ch.sum()),
                "errors": 0.0,
                "scores": _cumulative(score[:upto][ch], SCORE_BUCKETS),
                "latency": _cumulative(latency[:upto][ch], LATENCY_BUCKETS),
            },
        }
        labels = {}
        for side, mask in (("candidate", served_by_canary[:labelled]), ("champion", ~to_canary[:labelled])):
            ys, ss = label[:labelled][mask], score[:labelled][mask]
            two = len(np.unique(ys)) == 2
            labels[side] = {
                "labels": float(len(ys)),
                "auc": _auc(ys, ss) if two else float("nan"),
                "se": auc_standard_error(ys, ss) if two else float("nan"),
            }
        verdict = judge(
            spec, figures, candidate="2", champion="1", route="canary", elapsed_s=float(t), labels=labels or None
        )
        if verdict.decided:
            undecided = verdict.reason.startswith(("no decision within", "only "))
            return (None if undecided else verdict.promote), float(t), verdict.reason
    return None, window, verdict.reason if verdict else "no look"


def _known_amounts(champion: Model, same: Model, harmful: dict[str, Model], y: np.ndarray) -> dict[str, float]:
    """How far each candidate is from the champion on the whole test split: score PSI on deciles, AUC change."""
    from ativo.deploy.watch import DECILES
    from ativo.monitor.stats import psi

    def deciles(s: np.ndarray) -> list[float]:
        return list(np.histogram(s, bins=(0.0, *DECILES))[0].astype(float))

    out = {"errors_share": ERROR_SHARE, "slow_share": SLOW_SHARE}
    for name, m in (("aa", same), *((c, harmful[c]) for c in ("shifted", "shifted_near", "worse_auc"))):
        out[f"{name}_psi"] = round(float(psi(deciles(champion.scores), deciles(m.scores))), 4)
        out[f"{name}_auc_change"] = round(_auc(y, m.scores) - _auc(y, champion.scores), 4)
    return out


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s))


def _upper(k: int, n: int) -> float | None:
    from ativo.evaluate.intervals import proportion

    return round(proportion(k, n, 0.95).high, 4) if n else None


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
    counts = {case: max(1, round(CANARIES * share)) for case, share in SHARES.items()}
    n_aa = min(8, counts["aa"] + counts["aa_labels"])
    champion, aa, harmful = _models(spec, split, n_aa)
    train_s = time.perf_counter() - started
    y = split.test[LABEL].to_numpy().astype(int)
    known = _known_amounts(champion, aa[0], harmful, y)
    print(f"known amounts on every test row: {known}")
    print(f"models trained and scored in {train_s:.0f} s; replaying {sum(counts.values())} canaries at {RATE:g} req/s")
    rng = np.random.default_rng(SEED)
    results: dict[str, list[tuple[bool | None, float, str]]] = {}
    for case, count in counts.items():
        labelled = case in ("aa_labels", "worse_auc")
        case_spec = spec.model_copy(update={"deploy": spec.deploy.model_copy(update={"await_labels": labelled})})
        results[case] = []
        for i in range(count):
            candidate = aa[i % len(aa)] if case.startswith("aa") else harmful[case]
            results[case].append(replay(case_spec, champion, candidate, y, rng))
    replay_s = time.perf_counter() - started - train_s
    window = spec.deploy.canary_window_minutes * 60
    table: dict[str, dict[str, Any]] = {}
    correct_times: list[float] = []
    false_promotions = harmful_n = false_rollbacks = sound_n = 0
    for case, outs in results.items():
        harmful_case = case in HARMFUL
        promoted = sum(1 for p, _, _ in outs if p is True)
        rolled = sum(1 for p, _, _ in outs if p is False)
        undecided = sum(1 for p, _, _ in outs if p is None)
        right = [s for p, s, _ in outs if p is (not harmful_case)] if case not in AT_LIMIT else []
        correct_times += right
        if harmful_case:
            false_promotions, harmful_n = false_promotions + promoted, harmful_n + len(outs)
        else:
            false_rollbacks, sound_n = false_rollbacks + rolled, sound_n + len(outs)
        table[case] = {
            "canaries": len(outs),
            "promoted": promoted,
            "rolled_back_for_harm": rolled,
            "undecided_at_window": undecided,
            "median_decision_s": statistics.median(right) if right else None,
            "example": outs[0][2][:160],
        }
        med = table[case]["median_decision_s"]
        print(
            f"  {case:10s} {len(outs):4d} canaries: promoted {promoted:3d}, rolled back for harm {rolled:3d}, "
            f"undecided {undecided:3d}; median correct decision {'n/a' if med is None else f'{med:.0f} s'}"
        )
    alpha = spec.deploy.alpha
    fp = false_promotions / harmful_n if harmful_n else 0.0
    fr = false_rollbacks / sound_n if sound_n else 0.0
    print(
        f"false promotions {false_promotions}/{harmful_n} ({fp:.1%}), false rollbacks {false_rollbacks}/{sound_n} "
        f"({fr:.1%}) at α {alpha:g}; median correct decision "
        f"{statistics.median(correct_times) if correct_times else float('nan'):.0f} s against {window:.0f} s for a "
        f"fixed window; replay {replay_s:.0f} s"
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
                "false_promotion_rate": round(fp, 4),
                "false_promotion_upper95": _upper(false_promotions, harmful_n),
                "false_rollback_rate": round(fr, 4),
                "false_rollback_upper95": _upper(false_rollbacks, sound_n),
                "median_decision_s": statistics.median(correct_times) if correct_times else None,
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
