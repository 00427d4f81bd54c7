"""The landing area: deliveries shaped to a spec's layout, and the simulator that replays reference data as batches.

A delivery (an upstream system's CSV, ``ativo land``, or the reference records) is renamed, recoded and given the ids
the spec derives (:func:`shape_delivery`); the same record always gets the same ids. The simulator lands the
reference data as daily batches with the event date of the day they land; options inject the spec's drift from a
given day and malformed batches of the kinds real feeds produce.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ativo.data.reference import SOURCE_FILE, SOURCE_LINE
from ativo.errors import DeliveryError
from ativo.spec import IdRule, ModelSpec
from ativo.store import prefixes
from ativo.store.objects import ObjectStore
from ativo.store.redaction import Forgotten, Needles, forget_in_objects

if TYPE_CHECKING:
    import pandas as pd

MALFORMED_KINDS = (
    "missing_column",
    "wrong_type",
    "out_of_range",
    "unknown_category",
    "duplicate_ids",
    "empty_file",
    "non_utf8",
    "header_only",
)


@dataclass(frozen=True)
class LandedBatch:
    """One batch written to the landing area."""

    day: dt.date
    key: str
    rows: int
    malformed: str | None
    drifted: bool


@dataclass(frozen=True)
class Landed:
    """A delivery written to the landing area by :func:`land_file`."""

    uri: str
    rows: int
    notes: list[str]


def forget(store: ObjectStore, spec: ModelSpec, needles: Needles) -> Forgotten:
    """Remove the lines of erased subjects from every landing batch of ``spec`` (an erasure).

    A line goes when its record id or subject column holds a needle (other lines keep their bytes); a batch that
    does not parse as such a CSV loses the lines that name a long needle anywhere
    (:func:`ativo.store.redaction.csv_without`). Each batch is replaced whole; a second call changes nothing.

    Returns:
        ``places``: object key → lines removed.
    """
    ids = (spec.data_schema.record_id, spec.data_schema.subject)
    return forget_in_objects(store, prefixes.landing(spec.name), needles, ids)


def _hash_id(prefix: str, values: list[Any], key: bytes | None) -> str:
    blob = "\x1f".join([prefix, *("" if _missing(v) else str(v).strip() for v in values)]).encode("utf-8")
    digest = hmac.new(key, blob, hashlib.sha256) if key is not None else hashlib.sha256(blob)
    return prefix + digest.hexdigest()[:16]


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or str(value) in ("<NA>", "nan")


def derive_id(rule: IdRule, df: pd.DataFrame, key: bytes | None = None) -> list[str | None]:
    """The ids ``rule`` gives the rows of ``df`` (a row whose source columns are all missing gets no id).

    A hash over PII columns is keyed (HMAC-SHA256 with ``key``, the platform's :func:`ativo.hashing.id_key`): a
    name and a birth date are too few values for a plain hash to hide them.

    Raises:
        DeliveryError: the rule reads a column the delivery does not have.
    """
    if rule.line:
        if SOURCE_LINE not in df.columns:
            raise DeliveryError(
                "ids derived from 'line' exist only for reference records: this delivery must carry "
                "the id column itself"
            )
        return [f"{rule.prefix}{f}-{int(n):05d}" for f, n in zip(df[SOURCE_FILE], df[SOURCE_LINE], strict=True)]
    absent = [c for c in rule.inputs if c not in df.columns]
    if absent:
        raise DeliveryError(f"cannot derive ids: the delivery has no column {', '.join(absent)}")
    if rule.column:
        return [None if _missing(v) else f"{rule.prefix}{str(v).strip()}" for v in df[rule.column]]
    cols = [df[c].tolist() for c in rule.inputs]
    # A row with none of the inputs gets no id (validation names it), never the one id every such row would share.
    return [
        None if all(_missing(v) for v in vals) else _hash_id(rule.prefix, list(vals), key)
        for vals in zip(*cols, strict=True)
    ]


def needs_key(spec: ModelSpec) -> bool:
    """Whether the spec derives an id by hashing PII columns (then the platform's id key is needed)."""
    pii = set(spec.data_schema.pii)
    return any(
        r is not None and r.hash and pii & set(r.hash) for r in (spec.source.ids.record_id, spec.source.ids.subject)
    )


def _key_for(spec: ModelSpec, key: bytes | None) -> bytes | None:
    if key is not None or not needs_key(spec):
        return key
    from ativo.config import load_settings
    from ativo.hashing import id_key

    return id_key(load_settings())


def shape_delivery(raw: pd.DataFrame, spec: ModelSpec, key: bytes | None = None) -> tuple[pd.DataFrame, list[str]]:
    """A raw delivery in the spec's landing layout: renamed, recoded, ids derived, the schema's columns in order.

    Columns the delivery carries already (an id, the event time) are kept; the ones the spec derives are added;
    columns the schema does not name are dropped and reported. A schema column that is still missing stays missing,
    so validation names it.

    Returns:
        (the landing frame, notes: one line per thing done that a person may want to know).
    """
    src, schema = spec.source, spec.data_schema
    df = raw.rename(columns=src.rename)
    notes: list[str] = []
    for col, mapping in src.recode.items():
        if col in df.columns:
            df[col] = df[col].map(lambda v, m=mapping: m.get(v, v) if isinstance(v, str) else v)
    for target, rule in ((schema.record_id, src.ids.record_id), (schema.subject, src.ids.subject)):
        if rule is not None and target not in df.columns:
            df[target] = derive_id(rule, df, _key_for(spec, key) if rule.hash else None)
            notes.append(f"derived {target} ({_describe(rule)})")
    extra = [c for c in df.columns if c not in schema.columns and c not in (SOURCE_FILE, SOURCE_LINE)]
    if extra:
        notes.append(
            f"dropped {len(extra)} column(s) the spec does not declare: {', '.join(map(str, extra[:20]))}"
            + (" …" if len(extra) > 20 else "")
        )
    present = [c for c in schema.columns if c in df.columns]
    return df[present].copy(), notes


def _describe(rule: IdRule) -> str:
    if rule.line:
        return "reference file and line"
    if rule.column:
        return f"from column {rule.column}"
    return f"a hash of {', '.join(rule.hash or ())}"


def reference_records(spec: ModelSpec, reference_dir: Path) -> pd.DataFrame:
    """The spec's reference data in its landing layout: ids derived, numbers typed, event time still empty.

    Raises:
        DeliveryError: the spec declares no reference data (``source.kind`` is not ``wheel_csv``).
    """
    import pandas as pd

    from ativo.data.reference import read_reference

    ref = spec.source.reference
    if ref is None:
        raise DeliveryError(
            f"spec {spec.name!r} declares no reference data (source.kind {spec.source.kind!r}, "
            "not wheel_csv): there is nothing to simulate or replay"
        )
    schema = spec.data_schema
    df, _ = shape_delivery(read_reference(ref, reference_dir), spec)
    df[schema.event_time] = ""
    for f in schema.features:
        if f.type != "category" and f.name in df.columns:
            num = pd.to_numeric(df[f.name].astype("object"), errors="raise")
            df[f.name] = num.astype(
                "int64" if f.type == "int" and not num.isna().any() else ("Int64" if f.type == "int" else "float64")
            )
    text = [c for c in df.columns if df[c].dtype == "string"]
    for c in text:
        df[c] = df[c].astype("object").where(df[c].notna(), None)
    return df[[c for c in schema.columns if c in df.columns]]


def land_file(spec: ModelSpec, store: ObjectStore, path: Path, day: dt.date, *, replace: bool = False) -> Landed:
    """Land a CSV delivery as ``day``'s batch: shaped to the spec's layout, written atomically.

    A file already in the landing layout is landed byte for byte (validation then judges exactly what was
    delivered); any other is renamed, recoded and given its derived ids and, when it has none, the day as its event
    time (:func:`shape_delivery`). Validation happens in the ETL run, which quarantines a bad batch.

    Raises:
        DeliveryError: the file is unreadable, larger than ``source.max_batch_bytes``, not CSV, lacks a column an
            id rule reads, or a different batch is already landed for the day (``replace`` lands it anyway).
    """
    import pandas as pd

    try:
        size = path.stat().st_size
        if size > spec.source.max_batch_bytes:
            raise DeliveryError(
                f"{path}: {size} bytes is more than source.max_batch_bytes "
                f"({spec.source.max_batch_bytes}) of spec {spec.name!r}"
            )
        data = path.read_bytes()
    except OSError as err:
        raise DeliveryError(f"cannot read {path}: {err.strerror}") from None
    schema = spec.data_schema
    notes: list[str] = []
    header = data.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", errors="replace").split(",")
    if sorted(h.strip() for h in header) == sorted(schema.columns):
        rows = max(data.count(b"\n") - 1 + (0 if data.endswith(b"\n") else 1), 0)
        notes.append("already in the landing layout: landed byte for byte")
    else:
        try:
            raw = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8")
        except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as err:
            raise DeliveryError(f"{path} is not a UTF-8 CSV file with a header line: {str(err)[:300]}") from None
        shaped, notes = shape_delivery(raw, spec)
        if schema.event_time not in shaped.columns:
            shaped[schema.event_time] = day.isoformat()
            notes.append(f"set {schema.event_time} to {day} (the delivery has none)")
        missing = [c for c in schema.columns if c not in shaped.columns]
        if missing:
            notes.append(f"still missing: {', '.join(missing)} (validation will quarantine the batch)")
        data = to_csv_bytes(shaped[[c for c in schema.columns if c in shaped.columns]])
        rows = len(shaped)
    key = prefixes.landing_batch(spec.name, day)
    if store.exists(key):
        if store.get_bytes(key) == data:
            notes.append("the same batch was already landed for that day: nothing changed")
            return Landed(store.uri(key), rows, notes)
        if not replace:
            raise DeliveryError(
                f"a different batch is already landed for {day} at {store.uri(key)}: land it with "
                "--replace to redeliver the day"
            )
        notes.append("replaced the batch landed before for that day")
    return Landed(store.put_bytes(key, data), rows, notes)


def apply_drift(df: pd.DataFrame, spec: ModelSpec) -> pd.DataFrame:
    """The covariate shift the spec declares (``source.drift``: column → added value), clipped to its bounds."""
    out = df.copy()
    for name, shift in spec.source.drift.items():
        f = spec.data_schema.feature(name)
        moved = (out[name] + shift).clip(lower=f.min, upper=f.max)
        out[name] = moved.round().astype(out[name].dtype) if f.type == "int" else moved
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
    on_progress: Callable[[int, int], None] | None = None,
) -> list[LandedBatch]:
    """Land ``days`` daily batches from ``start``: every reference record lands exactly once.

    Args:
        spec: the model spec (its schema decides the layout).
        store: the object store holding the landing area.
        reference_dir: where the reference data was fetched.
        start: the first event date.
        days: how many consecutive days to land.
        seed: shuffles records across days, reproducibly.
        drift_from: from this day on, batches carry a covariate shift.
        malformed: day → a kind from MALFORMED_KINDS; that day's batch is broken that way.
        on_progress: called with (batches landed, batches in all) after each batch (a command line's progress bar).

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
        key = prefixes.landing_batch(spec.name, day)
        store.put_bytes(key, data)
        landed.append(LandedBatch(day=day, key=key, rows=len(batch), malformed=broken, drifted=drifted))
        if on_progress is not None:
            on_progress(len(landed), days)
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
    out[schema.subject] = [f"subj-syn-{seed}-{i:09d}" for i in range(rows)]
    out[schema.event_time] = spec.source.start_date.isoformat()
    return out
