"""A version's reference profile: computed from its splits and scores, JSON without a single row in it."""

from __future__ import annotations

import json

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
