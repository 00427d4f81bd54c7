"""Gates judge bounds, not points: the intervals, and the verdicts they give near a limit."""

from __future__ import annotations

import numpy as np
import pytest

from ativo.evaluate import intervals
from ativo.evaluate.results import INSUFFICIENT, Check, GateResult


def test_exact_binomial_bounds_match_scipys_and_cover_the_rate():
    from scipy.stats import binomtest

    for k, n in [(0, 50), (3, 50), (108, 2000), (50, 50)]:
        got = intervals.proportion(k, n, 0.95)
        want = binomtest(k, n).proportion_ci(confidence_level=0.90, method="exact")  # two one-sided 95 % bounds
        assert (got.low, got.high) == pytest.approx((want.low, want.high), abs=1e-9)
        assert got.low <= k / n <= got.high


def test_delong_auc_matches_sklearn_and_its_spread_matches_a_bootstrap():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 3000)
    s = np.round(y * 0.8 + rng.normal(size=3000), 1)  # ties
    got = intervals.auc(y, s, 0.95)
    assert got.value == pytest.approx(roc_auc_score(y, s))
    boot = np.std([roc_auc_score(y[i], s[i]) for i in (rng.integers(0, 3000, 3000) for _ in range(300))])
    assert (got.high - got.value) / 1.6449 == pytest.approx(boot, rel=0.15)
    same = intervals.auc_difference(y, s, s, 0.95)
    assert same.value == 0 and same.low == pytest.approx(0) and same.high == pytest.approx(0)


def test_rows_needed_is_where_a_clean_sample_first_shows_a_rate_within_the_limit():
    n = intervals.needed_rows(0.05, 0.95)
    assert intervals.proportion(0, n, 0.95).high <= 0.05 < intervals.proportion(0, n - 1, 0.95).high


def flip_rate(k: int, n: int) -> Check:
    return Check.bounded(
        "perturbation_flip_rate",
        intervals.proportion(k, n, 0.95),
        0.05,
        "max",
        needed_rows=intervals.needed_rows(0.05, 0.95),
    )


def test_a_rate_just_above_its_limit_on_noise_passes_and_one_clearly_above_fails():
    near = flip_rate(108, 2000)  # 5.4 %, the erasure retraining's rate: its lower bound is under 5 %
    assert near.value > 0.05 and near.passed
    far = flip_rate(160, 2000)  # 8 %: the data shows it
    assert not far.passed and "even at its lower 95% bound" in far.failure()
    assert "[0.07" in far.failure() and "on 2000 rows" in far.failure()


def test_too_few_rows_is_insufficient_evidence_with_the_rows_it_would_need():
    few = flip_rate(0, 40)
    assert not few.passed and few.insufficient
    assert few.failure() == (
        f"{INSUFFICIENT}perturbation_flip_rate rests on 40 rows; deciding it against at most 0.05 needs at least 59"
    )
    result = GateResult.judge("robustness", [few], ok="fine")
    assert not result.passed and result.reason == few.failure()
    again = GateResult.from_dict(result.to_dict())  # what the report and the card read back
    assert again.check_lines() == [
        "perturbation_flip_rate = 0 [0, 0.07216] on 40 rows, judged on its bound 0; limit <= 0.05: "
        "insufficient evidence"
    ]


def test_the_report_keeps_the_interval_and_the_rows():
    result = GateResult.judge("robustness", [flip_rate(108, 2000)], ok="fine")
    assert result.passed and result.metrics["perturbation_flip_rate_rows"] == 2000
    low, high = result.metrics["perturbation_flip_rate_interval"]
    assert low < 0.05 < 0.054 < high
    [line] = GateResult.from_dict(result.to_dict()).check_lines()
    assert line.startswith("perturbation_flip_rate = 0.054 [0.04") and line.endswith("limit <= 0.05: ok")


def test_a_test_set_of_one_class_has_no_auc_and_fails_its_check():
    ones = np.ones(600, dtype=int)
    auc = intervals.auc(ones, np.linspace(0, 1, 600), 0.95)
    check = Check.bounded("auc", auc, 0.8, "min")
    assert np.isnan(auc.value) and not check.passed
    assert np.isnan(intervals.auc_standard_error(ones, np.linspace(0, 1, 600)))
