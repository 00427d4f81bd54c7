from __future__ import annotations

import pandas as pd

from ativo.data.features import LABEL, read_parquet_bytes, to_features, to_parquet_bytes
from ativo.data.landing import reference_records


def test_features_are_typed_sorted_and_labelled(spec, reference_dir):
    raw = reference_records(spec, reference_dir).head(500).copy()
    raw["event_date"] = "2026-03-01"
    feats = to_features(raw.sample(frac=1, random_state=1), spec)
    assert feats["record_id"].is_monotonic_increasing
    assert feats[LABEL].isin([0, 1]).all()
    assert feats[LABEL].sum() == (raw["income"] == ">50K").sum()
    assert str(feats["age"].dtype) == "int64"
    assert "income" not in feats.columns


def test_same_batch_gives_identical_bytes_whatever_the_row_order(spec, reference_dir):
    raw = reference_records(spec, reference_dir).head(800).copy()
    raw["event_date"] = "2026-03-01"
    a = to_parquet_bytes(to_features(raw, spec))
    b = to_parquet_bytes(to_features(raw.iloc[::-1], spec))
    assert a == b
    back = read_parquet_bytes(a)
    pd.testing.assert_frame_equal(back, to_features(raw, spec), check_dtype=False)
