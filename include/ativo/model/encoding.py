"""Feature frames and request rows as the booster's input, one way for training, the gates and serving.

Categories are coded by the spec's fixed category list (an unknown one becomes missing), numbers are floats, and
the columns follow the spec's feature order, so a row scores the same whichever path built it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ativo.spec import ModelSpec

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import xgboost as xgb

_CODES: dict[str, dict[str, dict[str, int]]] = {}


def category_codes(spec: ModelSpec) -> dict[str, dict[str, int]]:
    """Category → code of each categorical feature (the position in the spec's category list), cached per spec."""
    key = spec.content_hash()
    if key not in _CODES:
        _CODES[key] = {
            f.name: {c: i for i, c in enumerate(f.categories or ())}
            for f in spec.data_schema.features
            if f.type == "category"
        }
    return _CODES[key]


def design_matrix(df: pd.DataFrame, spec: ModelSpec) -> pd.DataFrame:
    """Model inputs only (no ids, no label), categories with the spec's fixed category list."""
    import pandas as pd

    cols = {}
    for f in spec.data_schema.features:
        if f.type == "category":
            cols[f.name] = pd.Categorical(df[f.name], categories=list(f.categories or ()))
        else:
            cols[f.name] = df[f.name].astype("float64")
    return pd.DataFrame(cols, index=df.index)


def frame_dmatrix(df: pd.DataFrame, spec: ModelSpec, label: Any = None) -> xgb.DMatrix:
    """A feature frame as a DMatrix (categorical features native), with ``label`` when training."""
    import xgboost as xgb

    return xgb.DMatrix(design_matrix(df, spec), label=label, enable_categorical=True)


def score_frame(booster: xgb.Booster, df: pd.DataFrame, spec: ModelSpec) -> Any:
    """Positive-class probabilities for the rows of a feature frame."""
    return booster.predict(frame_dmatrix(df, spec))


def encode_records(spec: ModelSpec, records: list[dict[str, Any]]) -> np.ndarray:
    """Rows (feature name → value) as the float matrix the booster reads (categories as their codes).

    An unknown category or a missing value becomes NaN, which XGBoost treats as missing; validating input is
    the API's job, this is the hot path.
    """
    import numpy as np

    features = spec.data_schema.features
    codes = category_codes(spec)
    out = np.full((len(records), len(features)), np.nan, dtype=np.float32)
    for i, row in enumerate(records):
        for j, f in enumerate(features):
            value = row.get(f.name)
            if value is None:
                continue
            out[i, j] = codes[f.name].get(value, np.nan) if f.type == "category" else float(value)
    return out


def encode_frame(spec: ModelSpec, df: pd.DataFrame) -> np.ndarray:
    """A feature frame as the same encoded matrix as :func:`encode_records` (categories as codes, missing NaN)."""
    import numpy as np

    dm = design_matrix(df, spec)
    cols = []
    for f in spec.data_schema.features:
        if f.type == "category":
            codes = dm[f.name].cat.codes.to_numpy().astype("float32")
            codes[codes < 0] = np.nan
            cols.append(codes)
        else:
            cols.append(dm[f.name].to_numpy(dtype="float32"))
    return np.column_stack(cols)


def matrix_dmatrix(spec: ModelSpec, booster: xgb.Booster, matrix: np.ndarray) -> xgb.DMatrix:
    """An encoded matrix as the booster's input (its feature names and categorical types)."""
    import xgboost as xgb

    return xgb.DMatrix(
        matrix,
        feature_names=spec.data_schema.feature_names,
        feature_types=booster.feature_types,
        enable_categorical=True,
    )
