"""A monitoring window read from a real prediction log and label log, judged against the version's profile."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from ativo.data.features import LABEL
from tests.support.scenarios import append_decisions

DAY = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def model(spec, small_boosters):
    from ativo.model.served import ServedModel

    return ServedModel(spec=spec, name=spec.name, version="3", booster=small_boosters["good"], sha256="")


@pytest.fixture(scope="module")
def profile(spec, adult_split, model):
    from ativo.monitor.profile import build_profile

    test = adult_split.test
    return build_profile(
        spec, "3", "adult_income-v0001", adult_split.train, test, model.predict_frame(test), test[LABEL].to_numpy()
    )


def log_window(store, spec, model, frame, day: dt.datetime, labels=None):
    """The frame's rows answered by ``model`` on ``day`` through the real prediction log (and labels, if given)."""
    from ativo.serve.predlog import LabelLog, PredictionLog

    log, feedback = PredictionLog(store, spec, b"pepper", contributions="none"), LabelLog(store, spec)
    ts = day.timestamp() + 3600
    ids = append_decisions(log, spec, model, frame, ts)
    log.close()
    if labels is not None:
        feedback.append(ts + 60, ids, [int(v) for v in labels])
        feedback.close()


def test_a_window_is_read_from_the_logs_and_judged(spec, adult_split, model, profile, tmp_path):
    from ativo.monitor.window import assess, read_window
    from ativo.store.objects import ObjectStore

    store = ObjectStore(tmp_path.as_uri())
    rng = np.random.default_rng(0)
    test = adult_split.test
    calm = test.iloc[rng.choice(len(test), 3000, replace=False)]
    log_window(store, spec, model, calm, DAY, labels=calm[LABEL])
    moved = test.iloc[rng.choice(len(test), 3000, replace=False)].copy()
    moved["age"] = (moved["age"] + 12).clip(upper=90)
    log_window(store, spec, model, moved, DAY + dt.timedelta(days=1))

    window = read_window(store, spec, DAY, DAY + dt.timedelta(days=1), version="3")
    assert len(window) == 3000 and window["label"].notna().all()
    report = assess(spec, profile, window)
    assert report.judged and not report.drifted, report.reasons
    assert abs(report.performance["auc"] - profile.metrics["auc"]) < 0.03
    assert abs(report.performance["estimated_auc"] - report.performance["auc"]) < 0.03

    drifted = assess(spec, profile, read_window(store, spec, DAY + dt.timedelta(days=1), DAY + dt.timedelta(days=2)))
    assert drifted.drifted and any(r.startswith("age: PSI") for r in drifted.reasons)
    assert drifted.performance["labelled_rows"] == 0  # no labels yet: the estimate speaks for now

    # labels that no longer follow the features: the realised AUC decays, beyond its noise
    log_window(store, spec, model, calm, DAY + dt.timedelta(days=2), labels=rng.permutation(calm[LABEL].to_numpy()))
    decayed = assess(spec, profile, read_window(store, spec, DAY + dt.timedelta(days=2), DAY + dt.timedelta(days=3)))
    assert decayed.drifted and any("labelled rows" in r and "under the reference" in r for r in decayed.reasons)


def test_a_small_window_is_not_judged(spec, adult_split, model, profile):
    from ativo.monitor.window import assess

    window = adult_split.test.head(100).rename(columns={f: f"f_{f}" for f in spec.data_schema.feature_names})
    window["score"] = model.predict_frame(adult_split.test.head(100))
    report = assess(spec, profile, window)
    assert not report.judged and not report.drifted
    assert report.reasons == ["100 rows in the window, under monitor.min_rows = 500: not judged"]


def frame_window(spec, model, rows):
    """A window as read_window returns it, from rows answered by ``model`` (no labels unless given)."""
    window = rows.rename(columns={f: f"f_{f}" for f in spec.data_schema.feature_names}).reset_index(drop=True)
    window["score"] = model.predict_frame(rows)
    window["decision"] = (window["score"] >= spec.gates.decision_threshold).astype("int8")
    window["label"] = float("nan")
    return window


@pytest.fixture(scope="module")
def calm(adult_split):
    test = adult_split.test
    return test.iloc[np.random.default_rng(7).choice(len(test), 4000, replace=False)]


def test_a_shifted_score_distribution_alarms_as_prediction_drift(spec, model, profile, calm):
    from ativo.monitor.window import assess

    window = frame_window(spec, model, calm)
    window["score"] = np.clip(window["score"] + 0.25, 0, 1)  # the model's outputs moved, not its inputs
    report = assess(spec, profile, window)
    assert report.drifted and any(r.startswith("score: PSI") for r in report.reasons), report.reasons
    assert not any(r.startswith(("age:", "workclass:", "sex:")) for r in report.reasons)


def test_less_confident_scores_show_decay_before_labels_arrive(spec, model, profile, calm):
    from ativo.monitor.window import assess

    window = frame_window(spec, model, calm)
    window["score"] = 0.5 + (window["score"] - 0.5) * 0.3  # scores squeezed towards 0.5: a worse-ordered world
    report = assess(spec, profile, window)
    assert report.performance["labelled_rows"] == 0
    assert any(r.startswith("estimated AUC without labels") for r in report.reasons), report.reasons
    assert report.performance["estimated_auc"] < profile.metrics["auc"] - 0.05


def test_a_category_the_reference_never_saw_alarms_by_itself(spec, model, profile, calm):
    import dataclasses

    from ativo.monitor.window import assess

    ref = profile.features["workclass"]
    never = ref.categories.index("Never-worked")
    counts = list(ref.counts)
    counts[-1] += counts[never]  # a reference in which nobody had never worked
    counts[never] = 0
    seen = dataclasses.replace(
        profile, features={**profile.features, "workclass": dataclasses.replace(ref, counts=tuple(counts))}
    )
    rows = calm[calm["workclass"] != "Never-worked"].copy()
    rows.iloc[:30, rows.columns.get_loc("workclass")] = "Never-worked"  # 30 rows: a PSI of ~0.06
    report = assess(spec, seen, frame_window(spec, model, rows))
    [reason] = [r for r in report.reasons if r.startswith("workclass")]
    assert f"a category the reference never saw: 'Never-worked' (30 of {len(rows)} rows)" in reason


def test_a_fairness_drift_alarms_against_the_gates_limit(spec, model, profile, calm):
    from ativo.monitor.window import assess

    window = frame_window(spec, model, calm)
    calm_report = assess(spec, profile, window)
    assert not calm_report.drifted, calm_report.reasons
    dp = {(f["attribute"], f["metric"]): f for f in calm_report.fairness}[("sex", "selection_rate")]
    assert dp["difference"] < spec.gates.fairness.max_demographic_parity_difference and not dp["significant"]
    window["decision"] = (window["f_sex"] == "Male").astype("int8")  # the served decisions: every man, no woman
    report = assess(spec, profile, window)
    [reason] = [r for r in report.reasons if r.startswith("fairness: sex selection_rate")]
    assert "between 'Male' and 'Female', beyond the gate's limit 0.3" in reason
    assert not any(r.startswith("fairness: race") for r in report.reasons)
