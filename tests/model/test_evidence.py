"""No gate passes on no evidence, and no model is registered twice (issue 12, items 6 and 7).

Real boosters on real UCI Adult rows; the small or one-sided test sets are slices of the real test set.
"""

from __future__ import annotations

import pandas as pd
import pytest


@pytest.fixture(scope="module")
def good(spec, small_boosters):
    from ativo.model.served import ServedModel

    return ServedModel(spec=spec, name=spec.name, version="7", booster=small_boosters["good"], sha256="")


def _with_test(split, test):
    from ativo.data.split import Split

    return Split(train=split.train, valid=split.valid, test=test.reset_index(drop=True))


def test_a_fairness_view_with_one_judged_group_fails_for_insufficient_evidence(spec, adult_split, good):
    from ativo.evaluate.fairness import fairness_gate

    # 300 rows of men and 20 of women: each view has one group large enough to judge, so there is no difference
    test = adult_split.test
    men, women = test[test["sex"] == "Male"].head(300), test[test["sex"] == "Female"].head(20)
    few = _with_test(adult_split, pd.concat([men, women]))
    result = fairness_gate(spec, good, few)
    assert not result.passed
    assert result.reason.startswith("insufficient evidence: ")
    assert "view 'sex' has 1 group(s)" in result.reason and "Female 20" in result.reason
    assert "difference 0" not in result.reason


def test_a_test_set_under_min_test_rows_fails_every_gate_reading_it(spec, adult_split, good, settings):
    from ativo.evaluate.suite import GATES, Candidate, run_gate

    small = spec.model_copy(update={"gates": spec.gates.model_copy(update={"min_test_rows": 50000})})
    candidate = Candidate(spec=small, settings=settings, model=good, split=adult_split)
    results = {g: run_gate(g, candidate) for g in GATES if g not in ("infra", "regression")}  # these read no test rows
    assert len(adult_split.test) < 50000
    for gate, r in results.items():
        assert not r.passed, gate
        assert r.reason.startswith("insufficient evidence: the pinned test set")
        assert "min_test_rows is 50000" in r.reason


def test_a_champion_comparison_on_too_few_rows_fails_and_report_only_is_explicit(spec, adult_split, good, settings):
    from ativo.evaluate.performance import champion_gate
    from ativo.evaluate.suite import Candidate, run_gate

    seen = set(adult_split.test[spec.data_schema.record_id].iloc[: len(adult_split.test) - 300])
    result = champion_gate(spec, good, adult_split, good, seen)
    assert not result.passed and result.metrics["rows"] == 300
    assert result.reason.startswith("insufficient evidence: only 300 test rows are unseen by champion version 7")

    # A spec may opt a gate into report-only, explicitly; the result says what it would have decided.
    lenient = spec.model_copy(update={"gates": spec.gates.model_copy(update={"report_only": ("fairness",)})})
    test = adult_split.test
    one_sex = _with_test(adult_split, test[test["sex"] == "Male"].head(600))
    r = run_gate("fairness", Candidate(spec=lenient, settings=settings, model=good, split=one_sex))
    assert r.passed and r.details["report_only"]
    assert r.reason.startswith("report-only (gates.report_only), would fail: insufficient evidence")
    assert not run_gate("fairness", Candidate(spec=spec, settings=settings, model=good, split=one_sex)).passed


def test_the_same_model_file_is_not_registered_twice(spec, small_boosters, tmp_path):
    import mlflow

    from ativo.model.artifact import DuplicateVersion, log_booster
    from ativo.model.registry import register_version

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = mlflow.create_experiment("dup", artifact_location=(tmp_path / "art").as_uri())
    booster, other = small_boosters["good"], small_boosters["good2"]
    versions = []
    for b in (booster, other):
        with mlflow.start_run(experiment_id=exp):
            versions.append(register_version(log_booster(b), spec.name))
    assert versions == ["1", "2"]
    with mlflow.start_run(experiment_id=exp):
        again = log_booster(booster)  # a new run, the same bytes
    with pytest.raises(DuplicateVersion, match=r"byte-identical to version 1 of adult_income"):
        register_version(again, spec.name)
    from mlflow import MlflowClient

    assert len(MlflowClient().search_model_versions(f"name = '{spec.name}'")) == 2  # nothing half-registered


def test_a_version_loads_from_the_registry_it_is_asked_for_not_mlflows_default(spec, small_boosters, tmp_path):
    """`ativo serve` started from a shell has no MLFLOW_TRACKING_URI: the models:/m-… source must still resolve."""
    import mlflow

    from ativo.model.artifact import load_version, log_booster
    from ativo.model.registry import register_version

    right = f"sqlite:///{tmp_path / 'platform.db'}"
    mlflow.set_tracking_uri(right)
    exp = mlflow.create_experiment("load", artifact_location=(tmp_path / "art").as_uri())
    with mlflow.start_run(experiment_id=exp):
        version = register_version(log_booster(small_boosters["good"]), spec.name)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'elsewhere.db'}")  # the process default is another store
    try:
        model = load_version(spec, right, version)
    finally:
        mlflow.set_tracking_uri(right)
    assert model.version == version and len(model.sha256) == 64


def test_the_fairness_groups_are_fairlearns_and_rows_without_the_attribute_are_a_group_of_their_own(spec, adult_split):
    import numpy as np
    from fairlearn.metrics import MetricFrame, false_positive_rate, selection_rate, true_positive_rate

    from ativo.data.features import LABEL
    from ativo.evaluate.fairness import MISSING, SEP, group_metrics

    test = adult_split.test.head(3000).reset_index(drop=True)
    decided = np.random.default_rng(3).integers(0, 2, len(test))
    got = group_metrics(spec, test, decided)
    metrics = {"selection_rate": selection_rate, "tpr": true_positive_rate, "fpr": false_positive_rate}
    for view, result in got.items():
        cols = view.split(SEP)
        frame = MetricFrame(
            metrics=metrics, y_true=test[LABEL], y_pred=decided, sensitive_features=test[cols].astype(str)
        ).by_group
        want = {
            (SEP.join(map(str, k)) if isinstance(k, tuple) else str(k)): row
            for k, row in frame.dropna(how="all").iterrows()
        }
        assert set(result["groups"]) == set(want), view
        for key, g in result["groups"].items():
            assert [g[m] for m in metrics] == pytest.approx([want[key][m] for m in metrics]), (view, key)

    holes = test.copy()
    holes.loc[holes.index[:40], "sex"] = None  # 40 rows whose attribute was not recorded
    sex = group_metrics(spec, holes, decided)["sex"]["groups"]
    assert sex[MISSING]["rows"] == 40 and sum(g["rows"] for g in sex.values()) == len(holes)
