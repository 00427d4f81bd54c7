"""Drift statistics against a reference profile, on real UCI Adult rows: stationary windows do not alarm at any
size, a shifted feature and a category the reference never saw do, and a negligible shift at a large size is
significant without mattering."""

from __future__ import annotations

import numpy as np
import pytest

from ativo.monitor.profile import Binned, category_bins, numeric_bins
from ativo.monitor.stats import holm, homogeneity_pvalue, judge, psi


@pytest.fixture(scope="module")
def reference(spec, adult_split):
    train = adult_split.train
    return {
        f.name: (
            category_bins(train[f.name], tuple(f.categories)) if f.type == "category" else numeric_bins(train[f.name])
        )
        for f in spec.data_schema.features
    }


def windows_of(reference, frame):
    return {name: ref.count(frame[name]) for name, ref in reference.items()}


def test_psi_matches_its_definition_and_is_zero_on_the_same_distribution():
    ref, cur = [50, 30, 20], [30, 30, 40]
    want = sum((c / 100 - r / 100) * np.log((c / 100) / (r / 100)) for r, c in zip(ref, cur, strict=True))
    assert psi(ref, cur) == pytest.approx(want, abs=1e-12)
    assert psi([10, 20, 30], [20, 40, 60]) == pytest.approx(0.0, abs=1e-12)


def test_holm_controls_the_family():
    assert holm({"a": 0.001, "b": 0.006, "c": 0.2}, 0.01) == {"a"}  # 0.006 > 0.01/2: the step-down stops
    assert holm({"a": 0.001, "b": 0.004}, 0.01) == {"a", "b"}
    assert holm({"a": 0.02}, 0.01) == set()


@pytest.mark.parametrize("n", [1000, 5000])
def test_stationary_windows_do_not_alarm(spec, adult_split, reference, n):
    """Windows drawn from rows the reference never saw (the test split): at most 1 % of runs may alarm."""
    rng = np.random.default_rng(n)
    test = adult_split.test
    alarms = 0
    for _ in range(100):
        window = test.iloc[rng.choice(len(test), n, replace=False)]
        if any(d.drifted or d.significant for d in judge(reference, windows_of(reference, window), threshold=0.2)):
            alarms += 1
    assert alarms <= 3, f"{alarms} of 100 stationary windows of {n} rows alarmed"


def test_a_shifted_feature_alarms_with_its_reason(spec, adult_split, reference):
    window = adult_split.test.sample(2000, random_state=1).copy()
    window["age"] = (window["age"] + 12).clip(upper=90)
    window["hours_per_week"] = (window["hours_per_week"] + 8).clip(upper=99)
    found = {d.name: d for d in judge(reference, windows_of(reference, window), threshold=0.2)}
    assert found["age"].drifted and "age: PSI" in found["age"].reason and "beyond noise" in found["age"].reason
    # +8 hours moves the many rows at exactly 40 into one bin: beyond noise, and the PSI says by how much
    assert found["hours_per_week"].significant and 0.05 < found["hours_per_week"].psi
    assert not found["education"].drifted and not found["sex"].significant


def test_a_category_the_reference_never_saw_is_drift_by_itself(spec, adult_split):
    train = adult_split.train
    ref = {
        "workclass": category_bins(
            train.loc[train["workclass"] != "Without-pay", "workclass"],
            tuple(spec.data_schema.feature("workclass").categories),
        )
    }
    window = adult_split.test.sample(3000, random_state=2).copy()
    window.loc[window.index[:40], "workclass"] = "Without-pay"
    [d] = judge(ref, windows_of(ref, window), threshold=0.2)
    assert d.drifted and d.new_categories == {"Without-pay": int((window["workclass"] == "Without-pay").sum())}
    assert "a category the reference never saw: 'Without-pay'" in d.reason
    assert d.psi < 0.2  # the effect alone would not have alarmed


def test_a_negligible_shift_is_significant_at_large_n_but_does_not_matter(spec, adult_split):
    rng = np.random.default_rng(3)
    ref = numeric_bins(rng.normal(0, 1, 200_000))
    cur = ref.count(rng.normal(0.05, 1, 200_000))  # 0.05 sigma
    [d] = judge({"x": ref}, {"x": cur}, threshold=0.1)
    assert d.significant and not d.drifted and "under 0.1" in d.reason
    assert homogeneity_pvalue(ref.counts, cur) < 1e-6


def test_bins_round_trip_and_count_missing_apart():
    b = numeric_bins([1.0, 2.0, None, 3.0, 4.0, 5.0])
    assert b.counts[-1] == 1 and b.rows == 6
    assert Binned.from_dict(b.to_dict()) == b
    c = category_bins(["a", "b", None, "zz"], ("a", "b"))
    assert c.counts == (1, 1, 2)  # missing and an unknown value both land in (missing)
