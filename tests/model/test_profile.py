"""A version's reference profile: computed from its splits and scores, JSON without a single row in it."""

from __future__ import annotations

import json

import pytest

from ativo.data.features import LABEL


def test_the_profile_summarises_the_reference_without_rows(spec, adult_split, small_boosters):
    from ativo.model.served import ServedModel
    from ativo.monitor.profile import Profile, build_profile

    model = ServedModel(spec=spec, name=spec.name, version="3", booster=small_boosters["good"], sha256="")
    test = adult_split.test
    scores = model.predict_frame(test)
    profile = build_profile(spec, "3", "adult_income-v0007", adult_split.train, test, scores, test[LABEL].to_numpy())
    doc = profile.to_dict()
    text = json.dumps(doc, allow_nan=False)  # strict JSON
    assert Profile.from_dict(json.loads(text)).to_dict() == doc
    assert set(doc["features"]) == set(spec.data_schema.feature_names)
    assert sum(doc["features"]["age"]["counts"]) == len(adult_split.train)
    assert doc["features"]["sex"]["categories"] == ["Female", "Male", "(missing)"]
    assert 0.85 < doc["metrics"]["auc"] < 1 and doc["metrics"]["test_rows"] == len(test)
    assert set(doc["groups"]) == {"sex", "race"} and doc["groups"]["sex"]["Male"]["rows"] > 1000
    # no row: no record id, no subject id, and far fewer numbers than rows
    rid, sid = spec.data_schema.record_id, spec.data_schema.subject
    assert not any(str(v) in text for v in adult_split.train[rid].head(50))
    assert not any(str(v) in text for v in adult_split.train[sid].head(50))
    assert len(text) < 20_000


def test_auc_estimated_without_labels_is_within_003_of_the_realised_one(spec, adult_split, small_boosters):
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from ativo.model.served import ServedModel
    from ativo.monitor.performance import estimated_auc, expected_auc

    model = ServedModel(spec=spec, name=spec.name, version="3", booster=small_boosters["good"], sha256="")
    rng = np.random.default_rng(4)
    for n in (2000, len(adult_split.test)):
        window = adult_split.test.iloc[rng.choice(len(adult_split.test), n, replace=False)]
        scores = model.predict_frame(window)
        realised = roc_auc_score(window[LABEL], scores)
        est = estimated_auc(scores, draws=50)
        assert abs(est.value - realised) <= 0.03, (n, est, realised)
        assert 0 < est.std < 0.03 and est.rows == n
    # the closed form is the mean AUC over labels drawn from the scores
    p = rng.random(400)
    draws = [roc_auc_score(y, p) for y in (rng.random((300, 400)) < p) if 0 < y.sum() < 400]
    assert expected_auc(p) == pytest.approx(np.mean(draws), abs=0.005)
    tied = np.repeat([0.2, 0.5, 0.8], 50)
    draws = [roc_auc_score(y, tied) for y in (rng.random((400, 150)) < tied) if 0 < y.sum() < 150]
    assert expected_auc(tied) == pytest.approx(np.mean(draws), abs=0.01)
