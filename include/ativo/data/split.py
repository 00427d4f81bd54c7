"""The train / validation / test split of a dataset version: which row is in which split, and the split itself.

Two ways, one per ``compute.engine``:

- ``local``: :func:`split_frame`, a seeded, stratified split of every row in memory (rows ordered by record id
  first, so the split depends on the data, not on the order it was read in);
- ``dask``: :func:`part_of`, a seeded hash of the record id, so every worker, every trial and every later version
  of the same rows agree on which row is in which split without seeing the others (not stratified: at the sizes
  this engine is for, each split's label rate is the dataset's within noise); :func:`lazy_split` applies it to
  every partition of a lazy frame.

Reading a dataset version for training (in memory, lazily, or as a seeded sample) is :mod:`ativo.data.training`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ativo.data.features import LABEL
from ativo.spec import ModelSpec

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

PARTS = ("train", "valid", "test")


@dataclass
class Split:
    """Seeded train / validation / test frames (stratified in memory; a hash split's sample on Dask)."""

    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame


def split_frame(df: pd.DataFrame, spec: ModelSpec) -> Split:
    """Split by the spec's seed; rows are ordered by record id first so the split depends on data, not order."""
    from sklearn.model_selection import train_test_split

    cfg = spec.split
    df = df.sort_values(spec.data_schema.record_id, kind="stable").reset_index(drop=True)
    strat = df[LABEL] if cfg.stratify else None
    rest, test = train_test_split(df, test_size=cfg.test_fraction, random_state=cfg.seed, stratify=strat)
    valid_share = cfg.validation_fraction / (1 - cfg.test_fraction)
    strat = rest[LABEL] if cfg.stratify else None
    train, valid = train_test_split(rest, test_size=valid_share, random_state=cfg.seed, stratify=strat)
    return Split(train=train, valid=valid, test=test)


def split_codes(df: pd.DataFrame, spec: ModelSpec, salt: str = "split") -> np.ndarray:
    """A uniform number in [0, 1) per row from its record id and the spec's split seed (and ``salt``)."""
    import numpy as np
    import pandas as pd

    key = hashlib.sha256(f"{salt}:{spec.split.seed}".encode()).hexdigest()[:16]
    hashed = pd.util.hash_pandas_object(df[spec.data_schema.record_id].astype(str), index=False, hash_key=key)
    return (hashed.to_numpy() >> np.uint64(11)).astype("float64") / float(1 << 53)


def part_of(df: pd.DataFrame, spec: ModelSpec) -> np.ndarray:
    """0 (train), 1 (validation) or 2 (test) per row: test below ``test_fraction``, validation next."""
    import numpy as np

    u = split_codes(df, spec)
    test, valid = spec.split.test_fraction, spec.split.validation_fraction
    return np.where(u < test, 2, np.where(u < test + valid, 1, 0)).astype("int8")


def _select(df: pd.DataFrame, spec: ModelSpec, part: int) -> pd.DataFrame:
    return df[part_of(df, spec) == part]


@dataclass
class DaskSplit:
    """Train / validation / test as lazy Dask frames of the same dataset version."""

    train: Any
    valid: Any
    test: Any
    rows: int  # the rows the dataset version reads as now (all splits; an erasure's are gone)


def lazy_split(frame: Any, spec: ModelSpec, rows: int) -> DaskSplit:
    """A lazy feature frame's seeded hash split (:func:`part_of`), each split a filter of every partition."""
    parts = [frame.map_partitions(_select, spec, i, meta=frame._meta) for i in range(3)]
    return DaskSplit(train=parts[0], valid=parts[1], test=parts[2], rows=rows)
