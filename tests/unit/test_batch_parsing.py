"""Batches are checked a column at a time; they must accept and refuse exactly what the row-by-row checks do, and a
refused batch still names every problem by its field."""

from __future__ import annotations

import copy

import numpy as np
import orjson
import pytest

from ativo.data.features import to_features
from ativo.data.landing import reference_records
from ativo.evaluate.suite import request_rows
from ativo.serve.validation import RequestInvalid, RequestParser


@pytest.fixture(scope="module")
def rows(spec, reference_dir):
    frame = to_features(reference_records(spec, reference_dir).head(400), spec)
    return [{"features": r, "subject_id": f"s-{i}"} for i, r in enumerate(request_rows(spec, frame, 400))]


@pytest.fixture(scope="module")
def parser(spec):
    return RequestParser(spec)


def _by_rows(parser, rows):
    """What the row-by-row checks make of a batch (the reference)."""
    try:
        return parser._rows(rows, "rows[{}].", single=False), None
    except RequestInvalid as err:
        return None, err.errors


def test_a_valid_batch_is_encoded_as_the_row_checks_encode_it(parser, rows):
    batch = rows[:300]
    assert any(v is None for r in batch for v in r["features"].values()), "the sample should hold missing values"
    fast = parser._columns(batch)
    assert fast is not None
    slow, errors = _by_rows(parser, batch)
    assert errors is None
    np.testing.assert_array_equal(fast.matrix, slow.matrix)
    assert fast.subjects == slow.subjects and fast.keys == slow.keys
    assert parser.parse(orjson.dumps({"rows": batch})).matrix.tobytes() == slow.matrix.tobytes()


def _numeric(spec, kind):
    return next(f for f in spec.data_schema.features if f.type == kind)


BREAKS = {
    "unknown category": lambda s, f: f.__setitem__(
        next(x.name for x in s.data_schema.features if x.type == "category"), "Atlantis"
    ),
    "category as a number": lambda s, f: f.__setitem__(
        next(x.name for x in s.data_schema.features if x.type == "category"), 3
    ),
    "number as a string": lambda s, f: f.__setitem__(_numeric(s, "int").name, "39"),
    "boolean number": lambda s, f: f.__setitem__(_numeric(s, "int").name, True),
    "fractional int": lambda s, f: f.__setitem__(_numeric(s, "int").name, 39.5),
    "below the minimum": lambda s, f: f.__setitem__(_numeric(s, "int").name, -(10**6)),
    "a vast number": lambda s, f: f.__setitem__(_numeric(s, "int").name, 1e39),
    "unknown feature": lambda s, f: f.__setitem__("shoe_size", 44),
    "missing feature": lambda s, f: f.pop(next(x.name for x in s.data_schema.features if not x.nullable)),
}


@pytest.mark.parametrize("kind", sorted(BREAKS))
def test_a_broken_row_anywhere_in_a_batch_is_named_as_the_row_checks_name_it(parser, spec, rows, kind):
    batch = copy.deepcopy(rows[:50])
    BREAKS[kind](spec, batch[37]["features"])
    assert parser._columns(batch) is None
    slow, errors = _by_rows(parser, batch)
    assert slow is None and errors
    with pytest.raises(RequestInvalid) as err:
        parser.parse(orjson.dumps({"rows": batch}))
    assert err.value.errors == errors
    assert all(e["field"].startswith("rows[37].features") for e in errors), errors


@pytest.mark.parametrize(
    "row", [{"features": {}, "extra": 1}, {"features": [1, 2]}, {"subject_id": ""}, {"subject_id": 7}, "a string"]
)
def test_a_malformed_row_is_refused_with_its_index(parser, rows, row):
    batch = copy.deepcopy(rows[:5])
    if isinstance(row, dict) and "features" not in row:
        batch[3] = {**batch[3], **row}
    else:
        batch[3] = row
    assert parser._columns(batch) is None
    with pytest.raises(RequestInvalid) as err:
        parser.parse(orjson.dumps({"rows": batch}))
    assert err.value.errors and all(e["field"].startswith("rows[3]") for e in err.value.errors), err.value.errors
