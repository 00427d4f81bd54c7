"""The landing simulator: turns the reference data into daily batches, as an upstream system would deliver them.

Every record gets a stable ``record_id`` and ``customer_id`` (derived from its place in the published files,
so they never change between runs) and the event date of the day it lands. Options inject drift from a given
day and malformed batches of the kinds real feeds produce.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ativo.spec import ModelSpec
from ativo.store.objects import ObjectStore

if TYPE_CHECKING:
    import pandas as pd

MALFORMED_KINDS = (
    "missing_column", "wrong_type", "out_of_range", "unknown_category", "duplicate_ids", "empty_file",
    "non_utf8", "header_only",
)  # fmt: skip


@dataclass(frozen=True)
class LandedBatch:
    """One batch written to the landing area."""

    day: dt.date
    key: str
    rows: int
    malformed: str | None
    drifted: bool


def landing_key(spec_name: str, day: dt.date) -> str:
    """Object key of a day's landing batch."""
    return f"landing/{spec_name}/{day.isoformat()}.csv"


def stable_ids(source_file: str, source_line: int) -> tuple[str, str]:
    """(record_id, customer_id) for a reference record; the same record always gets the same ids."""
    tag = "d" if source_file == "adult.data" else "t"
    record_id = f"adult-{tag}-{source_line:05d}"
    customer_id = "cust-" + hashlib.sha256(f"ativo/adult/{record_id}".encode()).hexdigest()[:16]
    return record_id, customer_id


def reference_records(spec: ModelSpec, reference_dir: Path) -> pd.DataFrame:
    """The reference data in the spec's landing layout (ids added, event date still empty)."""
    from ativo.data.reference import load_adult

    if spec.source.kind != "uci_adult":
        raise ValueError(f"spec {spec.name!r}: the simulator needs source.kind 'uci_adult', not {spec.source.kind!r}")
    df = load_adult(reference_dir)
    ids = [stable_ids(f, int(n)) for f, n in zip(df["source_file"], df["source_line"], strict=True)]
    schema = spec.data_schema
    df[schema.record_id] = [i[0] for i in ids]
    df[schema.subject] = [i[1] for i in ids]
    df[schema.event_time] = ""
    return df[schema.columns]


def apply_drift(df: pd.DataFrame, spec: ModelSpec) -> pd.DataFrame:
    """A realistic covariate shift: the population gets older and works longer hours."""
    out = df.copy()
    for name, shift in (("age", 12), ("hours_per_week", 8)):
        if name in spec.data_schema.feature_names:
            f = spec.data_schema.feature(name)
            out[name] = (out[name] + shift).clip(lower=f.min, upper=f.max).astype("int64")
    return out


def to_csv_bytes(df: pd.DataFrame) -> bytes:
    """CSV as an upstream system writes it: header, comma-separated, empty for missing, UTF-8."""
    buf = io.StringIO()
    df.to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue().encode("utf-8")


def corrupt(df: pd.DataFrame, spec: ModelSpec, kind: str) -> bytes:
    """The bytes of a batch broken in the way ``kind`` names (see MALFORMED_KINDS)."""
    schema = spec.data_schema
    numeric = [f.name for f in schema.features if f.type != "category"]
    category = [f.name for f in schema.features if f.type == "category"]
    bad = df.copy()
    if kind == "missing_column":
        return to_csv_bytes(bad.drop(columns=[numeric[-1]]))
    if kind == "wrong_type":
        bad[numeric[0]] = bad[numeric[0]].astype("object")
        bad.loc[bad.index[:5], numeric[0]] = "forty"
        return to_csv_bytes(bad)
    if kind == "out_of_range":
        f = schema.feature(numeric[0])
        bad.loc[bad.index[:3], numeric[0]] = int((f.max or 0) + 50)
        return to_csv_bytes(bad)
    if kind == "unknown_category":
        bad[category[0]] = bad[category[0]].astype("object")
        bad.loc[bad.index[:4], category[0]] = "Astronaut"
        return to_csv_bytes(bad)
    if kind == "duplicate_ids":
        bad.loc[bad.index[1:4], schema.record_id] = bad[schema.record_id].iloc[0]
        return to_csv_bytes(bad)
    if kind == "empty_file":
        return b""
    if kind == "non_utf8":
        head, _, body = to_csv_bytes(bad).partition(b"\n")
        return head + b"\n" + body.replace(b",", b",\xe9\xff", 1)  # latin-1 bytes in a UTF-8 feed
    if kind == "header_only":
        return (",".join(schema.columns) + "\n").encode()
    raise ValueError(f"unknown malformed kind {kind!r}; choose from {', '.join(MALFORMED_KINDS)}")


def simulate(
    spec: ModelSpec,
    store: ObjectStore,
    reference_dir: Path,
    start: dt.date,
    days: int,
    *,
    seed: int = 7,
    drift_from: dt.date | None = None,
    malformed: dict[dt.date, str] | None = None,
) -> list[LandedBatch]:
    """Land ``days`` daily batches from ``start``: every reference record lands exactly once.

    Args:
        spec: the model spec (its schema decides the layout).
        store: the object store holding ``landing/``.
        reference_dir: where the reference data was fetched.
        start: the first event date.
        days: how many consecutive days to land.
        seed: shuffles records across days, reproducibly.
        drift_from: from this day on, batches carry a covariate shift.
        malformed: day → a kind from MALFORMED_KINDS; that day's batch is broken that way.

    Returns:
        One entry per landed batch.
    """
    import numpy as np

    if days < 1:
        raise ValueError("days must be at least 1")
    malformed = malformed or {}
    for day, kind in malformed.items():
        if kind not in MALFORMED_KINDS:
            raise ValueError(f"malformed[{day}]: unknown kind {kind!r}; choose from {', '.join(MALFORMED_KINDS)}")
    df = reference_records(spec, reference_dir)
    order = np.random.default_rng(seed).permutation(len(df))
    landed = []
    for i, idx in enumerate(np.array_split(order, days)):
        day = start + dt.timedelta(days=i)
        batch = df.iloc[np.sort(idx)].copy()
        batch[spec.data_schema.event_time] = day.isoformat()
        drifted = drift_from is not None and day >= drift_from
        if drifted:
            batch = apply_drift(batch, spec)
        broken = malformed.get(day)
        data = corrupt(batch, spec, broken) if broken else to_csv_bytes(batch)
        key = landing_key(spec.name, day)
        store.put_bytes(key, data)
        landed.append(LandedBatch(day=day, key=key, rows=len(batch), malformed=broken, drifted=drifted))
    return landed


def synthesize(spec: ModelSpec, reference_dir: Path, rows: int, *, seed: int = 11) -> pd.DataFrame:
    """A batch of ``rows`` records with the reference data's joint distribution (resampled, fresh ids).

    Used by benchmarks to scale the same schema far beyond 48,842 rows.
    """
    import numpy as np

    base = reference_records(spec, reference_dir)
    rng = np.random.default_rng(seed)
    out = base.iloc[rng.integers(0, len(base), size=rows)].reset_index(drop=True)
    schema = spec.data_schema
    out[schema.record_id] = [f"syn-{seed}-{i:09d}" for i in range(rows)]
    out[schema.subject] = [f"cust-syn-{seed}-{i:09d}" for i in range(rows)]
    out[schema.event_time] = spec.source.start_date.isoformat()
    return out
