"""The seeded hash split of ``compute.engine: dask``: each row's split follows from its record id alone."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ativo.errors import SpecError


@pytest.fixture(scope="module")
def frame(spec) -> pd.DataFrame:
    rows = 40_000
    return pd.DataFrame(
        {spec.data_schema.record_id: [f"rec-{i:07d}" for i in range(rows)], "label": np.arange(rows) % 2}
    )


def test_the_split_has_the_spec_fractions_and_does_not_depend_on_how_rows_are_partitioned(spec, frame):
    from ativo.data.split import part_of

    whole = part_of(frame, spec)
    shares = np.bincount(whole, minlength=3) / len(frame)
    assert shares[2] == pytest.approx(spec.split.test_fraction, abs=0.01)
    assert shares[1] == pytest.approx(spec.split.validation_fraction, abs=0.01)
    # the same rows in other partitions, in another order: each row lands where it landed before
    shuffled = frame.sample(frac=1.0, random_state=3)
    pieces = np.array_split(np.arange(len(shuffled)), 7)
    again = pd.Series(np.concatenate([part_of(shuffled.iloc[p], spec) for p in pieces]), index=shuffled.index)
    assert (again.sort_index().to_numpy() == whole).all()


def test_another_split_seed_draws_another_split(spec, frame):
    from ativo.data.split import part_of

    other = spec.model_copy(update={"split": spec.split.model_copy(update={"seed": spec.split.seed + 1})})
    moved = (part_of(frame, spec) != part_of(frame, other)).mean()
    assert 0.3 < moved < 0.6  # independent draws: about 2·0.7·0.3 + … of the rows change split


def test_the_dask_shape_is_checked_by_field(spec):
    from ativo.spec import parse_spec

    raw = spec.model_dump(mode="json", by_alias=True)
    raw["compute"] = {**raw["compute"], "engine": "dask", "dask": {"workers": 2, "memory_limit": "lots"}}
    with pytest.raises(SpecError, match=r"compute\.dask\.memory_limit"):
        parse_spec(raw)
    raw["compute"]["dask"] = {"workers": 0}
    with pytest.raises(SpecError, match=r"compute\.dask\.workers"):
        parse_spec(raw)
    raw["compute"]["dask"] = {"workers": 3, "memory_limit": "2GiB", "sample_rows": 20_000}
    assert parse_spec(raw).compute.dask.workers == 3
