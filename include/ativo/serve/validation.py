"""Request bodies of ``/predict`` and ``/explain``, checked against the spec and encoded in one pass.

One row::

    {"features": {"age": 39, "workclass": "State-gov", ...}, "subject_id": "c-123", "key": "c-123"}

A batch (at most ``deploy.max_batch_rows`` rows)::

    {"rows": [{"features": {...}, "subject_id": "..."}, ...]}

``key`` decides the canary route (stable per key); it defaults to ``subject_id``, else the prediction id.
Every problem is reported with the field it concerns (``rows[3].features.age``), all of them at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from ativo.spec import ModelSpec

MAX_ERRORS = 50
ROW_KEYS = frozenset({"features", "subject_id", "key"})
_ID_TYPES = {str, type(None)}
FLOAT32_MAX = float(np.finfo(np.float32).max)  # the matrix the booster reads is float32


class RequestInvalid(Exception):
    """The body does not match the spec; ``errors`` lists ``{"field", "reason"}`` for each problem."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        self.errors = errors[:MAX_ERRORS]
        more = len(errors) - len(self.errors)
        if more > 0:
            self.errors.append({"field": "(body)", "reason": f"… and {more} more problem(s)"})
        super().__init__("; ".join(f"{e['field']}: {e['reason']}" for e in self.errors))


@dataclass
class Parsed:
    """A valid request: its rows encoded as the booster reads them, with their keys and subjects."""

    matrix: np.ndarray
    keys: list[str | None]
    subjects: list[str | None]
    single: bool


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


class RequestParser:
    """Validates and encodes request bodies for one spec (built once per server)."""

    def __init__(self, spec: ModelSpec, max_batch_rows: int | None = None) -> None:
        self.spec = spec
        self.max_batch_rows = max_batch_rows or spec.deploy.max_batch_rows
        self.features = spec.data_schema.features
        self.names = frozenset(f.name for f in self.features)
        self._plan = []
        for f in self.features:
            codes = {c: float(i) for i, c in enumerate(f.categories or ())}
            preview = ", ".join((f.categories or ())[:8]) + (", …" if len(f.categories or ()) > 8 else "")
            self._plan.append((f.name, f.type, f.min, f.max, codes, f.nullable, preview))

    def parse(self, body: bytes) -> Parsed:
        """Validate ``body`` and encode its rows.

        Raises:
            RequestInvalid: malformed JSON, a wrong shape, or rows that break the spec (each problem named).
        """
        if not body:
            raise RequestInvalid(
                [
                    {
                        "field": "(body)",
                        "reason": "empty body: send a JSON object with 'features' (one row) or 'rows' (a batch)",
                    }
                ]
            )
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as err:
            raise RequestInvalid([{"field": "(body)", "reason": f"not valid JSON: {err}"}]) from None
        if not isinstance(doc, dict):
            raise RequestInvalid([{"field": "(body)", "reason": f"expected a JSON object, got {_kind(doc)}"}])
        if "rows" in doc:
            extra = sorted(set(doc) - {"rows"})
            if extra:
                raise RequestInvalid([{"field": k, "reason": "unknown field beside 'rows'"} for k in extra])
            rows = doc["rows"]
            if not isinstance(rows, list):
                raise RequestInvalid([{"field": "rows", "reason": f"expected an array of rows, got {_kind(rows)}"}])
            if not rows:
                raise RequestInvalid([{"field": "rows", "reason": "the batch is empty"}])
            if len(rows) > self.max_batch_rows:
                raise RequestInvalid(
                    [
                        {
                            "field": "rows",
                            "reason": f"{len(rows)} rows is more than the "
                            f"{self.max_batch_rows} a batch may hold (deploy.max_batch_rows)",
                        }
                    ]
                )
            return self._columns(rows) or self._rows(rows, "rows[{}].", single=False)
        return self._rows([doc], "", single=True)

    def _columns(self, rows: list[Any]) -> Parsed | None:
        """A batch of valid rows, checked and encoded a column at a time; None when any check fails.

        The same checks as :meth:`_rows`, in bulk: the shape of every row, then each feature's values at once (their
        types, categories, bounds, integrality and finiteness with numpy). A batch that breaks any of them is
        parsed again by :meth:`_rows`, which names every problem; valid batches (nearly all) never pay for that.
        """
        n = len(rows)
        if any(type(r) is not dict for r in rows) or set().union(*rows) - ROW_KEYS:
            return None
        feats = [r.get("features") for r in rows]
        if any(type(f) is not dict for f in feats) or set().union(*feats) - self.names:
            return None
        subjects = [r.get("subject_id") for r in rows]
        keys = [r.get("key") for r in rows]
        for ids in (subjects, keys):
            if not set(map(type, ids)) <= _ID_TYPES or any(v is not None and not 0 < len(v) <= 256 for v in ids):
                return None
        keys = [k or s for k, s in zip(keys, subjects, strict=True)]
        matrix = np.empty((n, len(self._plan)), dtype=np.float32)
        for j, (name, ftype, lo, hi, codes, nullable, _) in enumerate(self._plan):
            values = [f.get(name) for f in feats]
            col = self._column(values, ftype, lo, hi, codes, nullable)
            if col is None:
                return None
            matrix[:, j] = col
        return Parsed(matrix=matrix, keys=keys, subjects=subjects, single=False)

    @staticmethod
    def _column(
        values: list[Any], ftype: str, lo: float | None, hi: float | None, codes: dict[str, float], nullable: bool
    ) -> np.ndarray | None:
        """One feature's values encoded, or None when one of them is not valid (see :meth:`_encode`)."""
        types = set(map(type, values))
        missing = type(None) in types
        if missing and not nullable:
            return None
        if ftype == "category":
            if not types - {type(None)} <= {str}:
                return None
            col = np.fromiter(
                (np.nan if v is None else codes.get(v, -1.0) for v in values), dtype=np.float64, count=len(values)
            )
            return None if (col < 0).any() else col  # -1: not a category of the feature
        if not types - {type(None)} <= {int, float}:  # bool is not a number here
            return None
        try:
            col = np.fromiter((np.nan if v is None else v for v in values), dtype=np.float64, count=len(values))
        except OverflowError:  # an integer beyond any float
            return None
        present = col[~np.isnan(col)] if missing else col
        if float in types and not np.isfinite(col if not missing else present).all():
            return None
        if ftype == "int" and float in types and (present != np.round(present)).any():
            return None
        if (lo is not None and (present < lo).any()) or (hi is not None and (present > hi).any()):
            return None
        if (np.abs(present) > FLOAT32_MAX).any():
            return None
        return col

    def _rows(self, rows: list[Any], prefix: str, single: bool) -> Parsed:
        n = len(rows)
        matrix = np.empty((n, len(self._plan)), dtype=np.float32)
        keys: list[str | None] = [None] * n
        subjects: list[str | None] = [None] * n
        errors: list[dict[str, str]] = []
        for i, row in enumerate(rows):
            where = prefix.format(i)
            if not isinstance(row, dict):
                reason = f"expected an object, got {_kind(row)}"
                errors.append({"field": where.rstrip(".") or "(body)", "reason": reason})
                continue
            for k in row.keys() - ROW_KEYS:
                errors.append(
                    {"field": f"{where}{k}", "reason": "unknown field (a row has 'features', 'subject_id' and 'key')"}
                )
            for k in ("subject_id", "key"):
                v = row.get(k)
                if v is not None and not (isinstance(v, str) and 0 < len(v) <= 256):
                    errors.append(
                        {"field": f"{where}{k}", "reason": f"expected a string of 1-256 characters, got {_kind(v)}"}
                    )
            subjects[i] = row.get("subject_id")
            keys[i] = row.get("key") or subjects[i]
            feats = row.get("features")
            if not isinstance(feats, dict):
                reason = "required" if feats is None else f"expected an object of feature values, got {_kind(feats)}"
                errors.append({"field": f"{where}features", "reason": reason})
                continue
            if len(errors) < MAX_ERRORS:
                self._encode(feats, matrix[i], f"{where}features.", errors)
        if errors:
            raise RequestInvalid(errors)
        return Parsed(matrix=matrix, keys=keys, subjects=subjects, single=single)

    def _encode(self, feats: dict[str, Any], out: np.ndarray, where: str, errors: list[dict[str, str]]) -> None:
        for k in feats.keys() - self.names:
            errors.append({"field": f"{where}{k}", "reason": f"not a feature of {self.spec.name}"})
        for j, (name, ftype, lo, hi, codes, nullable, preview) in enumerate(self._plan):
            value = feats.get(name)
            if value is None:
                if nullable:
                    out[j] = np.nan
                else:
                    errors.append(
                        {"field": where + name, "reason": "required" if name not in feats else "may not be null"}
                    )
                continue
            if ftype == "category":
                code = codes.get(value) if isinstance(value, str) else None
                if code is None:
                    reason = (
                        f"unknown category {value!r} (expected one of: {preview})"
                        if isinstance(value, str)
                        else f"expected a string category, got {_kind(value)}"
                    )
                    errors.append({"field": where + name, "reason": reason})
                    continue
                out[j] = code
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                errors.append({"field": where + name, "reason": f"expected a number, got {_kind(value)}"})
                continue
            if ftype == "int" and isinstance(value, float) and not value.is_integer():
                errors.append({"field": where + name, "reason": f"expected an integer, got {value}"})
                continue
            if isinstance(value, float) and not math.isfinite(value):
                errors.append({"field": where + name, "reason": "must be a finite number"})
                continue
            if lo is not None and value < lo:
                errors.append({"field": where + name, "reason": f"{value} is below the minimum {lo:g}"})
                continue
            if hi is not None and value > hi:
                errors.append({"field": where + name, "reason": f"{value} is above the maximum {hi:g}"})
                continue
            if not -FLOAT32_MAX <= value <= FLOAT32_MAX:
                errors.append({"field": where + name, "reason": f"{value:.3g} is beyond the range of a float32"})
                continue
            out[j] = value


def decode(spec: ModelSpec, matrix: np.ndarray) -> dict[str, Any]:
    """Columns of original feature values from an encoded matrix (categories back to their names, NaN → None)."""
    cols: dict[str, Any] = {}
    for j, f in enumerate(spec.data_schema.features):
        col = matrix[:, j]
        if f.type == "category":
            cats = np.array([*(f.categories or ()), None], dtype=object)
            idx = np.where(np.isnan(col), len(cats) - 1, np.nan_to_num(col, nan=0)).astype(np.int64)
            cols[f.name] = cats[idx]
        else:
            cols[f.name] = col.astype(np.float64)
    return cols
