"""The regression set in the platform DB: labels, erasure of a subject's cases."""

from __future__ import annotations

import pytest


def test_labels_are_0_1_or_the_spec_class_names_and_a_bad_one_is_named(spec):
    from ativo.evaluate.regression import IncidentError, parse_label

    t = spec.data_schema.target
    assert [parse_label(spec, v) for v in ("1", "0", t.positive, t.negative, 1)] == [1, 0, 1, 0, 1]
    with pytest.raises(IncidentError, match=r"^expected: 'maybe' is not a label of adult_income"):
        parse_label(spec, "maybe")


def test_erasure_deletes_only_the_erased_subjects_cases(settings):
    from sqlalchemy import insert

    from ativo.evaluate.regression import cases, forget_subjects
    from ativo.store.db import get_engine, regression_cases, utcnow

    engine = get_engine(settings.db_url)
    with engine.begin() as conn:
        for i, subject in enumerate(("p-erased", "p-kept", None)):
            conn.execute(
                insert(regression_cases).values(
                    spec="adult_income",
                    prediction_id=f"20261202-{i}",
                    features={"age": 40},
                    expected=1,
                    decision=0,
                    score=0.01,
                    model_version="1",
                    dataset_version="adult_income-v0001",
                    subject=subject,
                    note="wrongly refused",
                    actor="test",
                    created_at=utcnow(),
                )
            )
    assert forget_subjects(engine, "adult_income", ["p-erased"]) == 1
    assert forget_subjects(engine, "compas_recidivism", ["p-kept"]) == 0  # another spec's request
    assert [c["subject"] for c in cases(engine, "adult_income")] == ["p-kept", None]
