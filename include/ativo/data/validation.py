"""Batch validation: a Great Expectations suite generated from the spec, with reasons a person can read.

A file larger than ``source.max_batch_bytes`` is refused unparsed; parsing failures (empty file, bytes that are not
UTF-8, text that is not CSV) are caught before GX runs; then the suite checks columns, types, ranges, category sets,
nulls, unique record ids and row-count bounds, and Ativo's own checks follow: control characters in any field,
event times outside the data interval, record ids another partition already holds.

Reasons name the column and the file line (line 1 is the header) and quote at most :data:`QUOTE_CHARS` characters
of a value, with its full length; a value of a PII column is never quoted.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ativo.spec import ModelSpec

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

INT_TYPES = ["int64", "Int64", "int32", "Int32"]
FLOAT_TYPES = ["float64", "Float64", "float32", *INT_TYPES]

QUOTE_CHARS = 80
"""At most this many characters of a value are quoted in a reason (then ``…`` and the value's full length)."""
REPORT_CHARS = 300
"""At most this many characters of any string are kept in a validation report."""
PII_VALUE = "(a PII value)"
ID_CHARS = 128
"""The longest record or subject id the platform DB's indexes hold."""

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f]")  # C0 control characters except tab
_CONTROL_NAMES = {0x00: "NUL", 0x0A: "LF", 0x0D: "CR"}


@dataclass
class ValidationOutcome:
    """What validation found.

    Attributes:
        success: True when every expectation passed.
        reasons: one readable line per failure (empty on success).
        rows: rows parsed (0 when the file could not be parsed).
        report: the full report (JSON-serialisable, every string bounded), including GX's own result.
        reported: findings that do not fail the batch (event times outside the interval under
            ``source.late_events: report``).
    """

    success: bool
    reasons: list[str]
    rows: int
    report: dict[str, Any] = field(default_factory=dict)
    reported: list[str] = field(default_factory=list)


def clip(text: str, limit: int = REPORT_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was (``'abc…' (1048576 chars)`` style)."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} chars)"


def quote(value: Any, *, pii: bool = False, limit: int = QUOTE_CHARS) -> str:
    """A value as a reason quotes it: its repr, at most ``limit`` characters of it; a PII value is never quoted."""
    if pii:
        return PII_VALUE
    if not isinstance(value, str):
        return clip(repr(value), limit)
    if len(value) <= limit:
        return repr(value)
    head = repr(value[:limit])
    return f"{head[:-1]}…{head[-1]} ({len(value)} chars)"


def bounded(obj: Any, limit: int = REPORT_CHARS) -> Any:
    """``obj`` (JSON-like) with every string in it cut to ``limit`` characters (see :func:`clip`)."""
    if isinstance(obj, str):
        return clip(obj, limit)
    if isinstance(obj, dict):
        return {k: bounded(v, limit) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [bounded(v, limit) for v in obj]
    return obj


def _quiet_gx() -> Any:
    from ativo.logs import quiet_third_party

    quiet_third_party()
    import great_expectations as gx

    quiet_third_party()  # again: importing it set some of its own loggers back to INFO
    return gx


def read_batch(data: bytes, spec: ModelSpec) -> tuple[pd.DataFrame | None, list[str]]:
    """Parse landing bytes into a frame, or say why they cannot be parsed.

    A file larger than ``source.max_batch_bytes`` is refused before anything else reads it. Categorical, id and
    date columns are read as text; numeric columns are left to the CSV parser so that a wrong type shows up as a
    wrong dtype in the suite.
    """
    import pandas as pd

    limit = spec.source.max_batch_bytes
    if len(data) > limit:
        return None, [f"file is {len(data)} bytes, more than source.max_batch_bytes ({limit}); not parsed"]
    if not data:
        return None, ["file is empty (0 bytes)"]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        return None, [f"file is not valid UTF-8: byte 0x{data[err.start]:02x} at offset {err.start}"]
    if not text.strip():
        return None, ["file holds only whitespace"]
    schema = spec.data_schema
    text_cols = [schema.record_id, schema.subject, schema.event_time, schema.target.column]
    text_cols += [f.name for f in schema.features if f.type == "category"]
    try:
        df = pd.read_csv(
            io.StringIO(text),
            dtype=dict.fromkeys(text_cols, "str"),
            keep_default_na=False,
            na_values=[""],
            low_memory=False,
        )
    except (pd.errors.ParserError, ValueError) as err:
        return None, [f"file is not parseable as CSV: {clip(str(err).strip())}"]
    for col in schema.pii:  # PII may be left out of a delivery that carries its ids: never required
        if col not in df.columns:
            df[col] = None
    return df, []


def record_lines(data: bytes, rows: int) -> list[int] | None:
    """The file line each parsed record starts on, or None when that is simply its position + 2.

    A quoted line break or a blank line moves the records after it. None also when the lines cannot be told (the
    count found differs from the parser's), and reasons then fall back to position + 2.
    """
    import numpy as np

    physical = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    if physical == rows + 1:
        return None
    buf = np.frombuffer(data, dtype=np.uint8)  # '"' and LF never occur inside a multi-byte UTF-8 character
    newlines = np.flatnonzero(buf == 0x0A)
    quoted = np.searchsorted(np.flatnonzero(buf == 0x22), newlines) % 2 == 1  # an odd count of quotes before it
    ends = newlines[~quoted]
    seg_start = np.concatenate(([0], ends + 1))
    seg_len = np.concatenate((ends, [len(buf)])) - seg_start
    seg_line = np.concatenate(([1], np.flatnonzero(~quoted) + 2))  # the physical line each record starts on
    lone_cr = (seg_len == 1) & (buf[np.minimum(seg_start, max(len(buf) - 1, 0))] == 0x0D)
    starts = seg_line[(seg_len > 0) & ~lone_cr][1:]  # pandas skips blank lines; the first record is the header
    return starts.tolist() if len(starts) == rows else None


def _line_finder(df: pd.DataFrame, lines: Sequence[int] | None) -> Callable[[Any], int | None]:
    """Index label → file line; only a frame with read_csv's default index has lines."""
    import pandas as pd

    index = df.index
    if not (isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1):
        return lambda _label: None
    if lines is None:
        return lambda label: int(label) + 2
    return lambda label: lines[int(label)] if 0 <= int(label) < len(lines) else None


def _lines(lines: Sequence[int | None], k: int = 3) -> str:
    known = [n for n in lines if n is not None][:k]
    if not known:
        return ""
    return ("line " if len(known) == 1 else "lines ") + ", ".join(map(str, known))


def build_suite(spec: ModelSpec) -> Any:
    """The GX expectation suite for the spec's landing batches."""
    gx = _quiet_gx()
    e = gx.expectations
    schema = spec.data_schema
    suite = gx.ExpectationSuite(name=f"{spec.name}.landing")
    suite.add_expectation(e.ExpectTableColumnsToMatchSet(column_set=schema.columns, exact_match=True))
    suite.add_expectation(
        e.ExpectTableRowCountToBeBetween(
            min_value=spec.source.rows_per_batch_min, max_value=spec.source.rows_per_batch_max
        )
    )
    for col in (schema.record_id, schema.subject, schema.event_time, schema.target.column):
        suite.add_expectation(e.ExpectColumnValuesToNotBeNull(column=col))
    suite.add_expectation(e.ExpectColumnValuesToBeUnique(column=schema.record_id))
    suite.add_expectation(e.ExpectColumnValuesToMatchRegex(column=schema.event_time, regex=r"^\d{4}-\d{2}-\d{2}$"))
    suite.add_expectation(
        e.ExpectColumnValuesToBeInSet(
            column=schema.target.column, value_set=[schema.target.positive, schema.target.negative]
        )
    )
    for f in schema.features:
        if not f.nullable:
            suite.add_expectation(e.ExpectColumnValuesToNotBeNull(column=f.name))
        if f.type == "category":
            suite.add_expectation(e.ExpectColumnValuesToBeInSet(column=f.name, value_set=list(f.categories or ())))
        else:
            types = INT_TYPES if f.type == "int" else FLOAT_TYPES
            if f.nullable:
                types = [*types, "float64"]
            suite.add_expectation(e.ExpectColumnValuesToBeInTypeList(column=f.name, type_list=types))
            if f.min is not None or f.max is not None:
                suite.add_expectation(e.ExpectColumnValuesToBeBetween(column=f.name, min_value=f.min, max_value=f.max))
    return suite


_context_cache: dict[str, Any] = {}


def _batch_definition() -> Any:
    if "bd" not in _context_cache:
        gx = _quiet_gx()
        ctx = gx.get_context(mode="ephemeral")
        ctx.variables.progress_bars = {"globally": False, "profilers": False, "metric_calculations": False}
        asset = ctx.data_sources.add_pandas("ativo").add_dataframe_asset("landing")
        _context_cache["bd"] = asset.add_batch_definition_whole_dataframe("whole")
    return _context_cache["bd"]


def _examples(
    values: Sequence[Any], labels: Sequence[Any], line_of: Callable[[Any], int | None], *, pii: bool, k: int = 3
) -> str:
    """Up to ``k`` distinct values, each quoted (bounded) with the first lines it is on."""
    seen: dict[str, list[int | None]] = {}
    for i, v in enumerate(values):
        s = quote(v, pii=pii)
        if s not in seen:
            if len(seen) == k:
                continue
            seen[s] = []
        seen[s].append(line_of(labels[i]) if i < len(labels) else None)
    return ", ".join(s + (f" ({where})" if (where := _lines(ls)) else "") for s, ls in seen.items())


def _column_names(names: set[Any], k: int = 20) -> str:
    shown = [quote(n, limit=60) if len(str(n)) > 60 else str(n) for n in sorted(names, key=str)[:k]]
    return ", ".join(shown) + (f" … ({len(names)} in all)" if len(names) > k else "")


def _type_examples(df: pd.DataFrame, col: str, whole: bool, line_of: Callable[[Any], int | None], pii: bool) -> str:
    """Examples of the values in a numeric column that are not numbers (or not whole numbers)."""
    import pandas as pd

    values = df[col]
    num = pd.to_numeric(values, errors="coerce")
    bad = values.notna() & num.isna()
    if whole:
        bad |= num.notna() & (num % 1 != 0)
    rows = values[bad].head(20)
    return _examples(rows.tolist(), rows.index.tolist(), line_of, pii=pii)


def _reason(res: Any, df: pd.DataFrame, spec: ModelSpec, line_of: Callable[[Any], int | None]) -> str | None:
    cfg = res.expectation_config
    kind, kw, r = cfg.type, cfg.kwargs, res.result or {}
    col = kw.get("column")
    if col is not None and col not in df.columns:
        return None  # reported once by the column-set expectation
    n = r.get("unexpected_count")
    pii = col in spec.data_schema.pii
    labels = r.get("partial_unexpected_index_list") or []
    ex = _examples(r.get("partial_unexpected_list") or [], labels, line_of, pii=pii)
    eg = f", e.g. {where}" if (where := _lines([line_of(i) for i in labels])) else ""
    if res.exception_info and res.exception_info.get("raised_exception"):
        message = clip(str(res.exception_info.get("exception_message")))
        return f"column '{col}': check {kind} could not run ({message})"
    if kind == "expect_table_columns_to_match_set":
        observed = set(r.get("observed_value") or [])
        expected = set(kw["column_set"])
        parts = []
        if expected - observed:
            parts.append("missing column(s): " + _column_names(expected - observed))
        if observed - expected:
            parts.append("unexpected column(s): " + _column_names(observed - expected))
        return "; ".join(parts) or "columns do not match the spec"
    if kind == "expect_table_row_count_to_be_between":
        return f"{r.get('observed_value')} rows; expected between {kw['min_value']} and {kw['max_value']}"
    if kind == "expect_column_values_to_not_be_null":
        return f"column '{col}': {n} missing value(s){eg}"
    if kind == "expect_column_values_to_be_unique":
        return f"column '{col}': {n} rows share a duplicated value, e.g. {ex}"
    if kind == "expect_column_values_to_be_in_set":
        return f"column '{col}': {n} value(s) not among the {len(kw['value_set'])} allowed, e.g. {ex}"
    if kind == "expect_column_values_to_be_in_type_list":
        whole = kw["type_list"][0] in INT_TYPES
        bad = _type_examples(df, col, whole, line_of, pii)
        return (
            f"column '{col}': values are of type {r.get('observed_value')}, expected a number "
            f"({kw['type_list'][0]})" + (f", e.g. {bad}" if bad else "")
        )
    if kind == "expect_column_values_to_be_between":
        lo, hi = (f"{v:g}" if isinstance(v, float) else str(v) for v in (kw.get("min_value"), kw.get("max_value")))
        return f"column '{col}': {n} value(s) outside [{lo}, {hi}], e.g. {ex}"
    if kind == "expect_column_values_to_match_regex":
        return f"column '{col}': {n} value(s) not a YYYY-MM-DD date, e.g. {ex}"
    return f"{kind} failed on {col or 'the table'}"


def _char_name(code: int) -> str:
    return _CONTROL_NAMES.get(code, f"U+{code:04X}")


def control_characters(df: pd.DataFrame, spec: ModelSpec, line_of: Callable[[Any], int | None]) -> list[str]:
    """One reason per schema column whose text holds a C0 control character other than tab.

    A NUL, an escape, a line break inside a quoted field: the reason names the characters and the lines, never
    the value.
    """
    reasons = []
    for col in [c for c in spec.data_schema.columns if c in df.columns]:
        values = df[col]
        if values.dtype.kind in "iufb":  # parsed as numbers: no text left
            continue
        text = values.dropna().astype(str)
        hit = text.str.contains(_CONTROL.pattern, regex=True)
        if not hit.any():
            continue
        held = text[hit]
        codes = sorted({ord(c) for v in held.head(1000) for c in set(_CONTROL.findall(v))})
        names = ", ".join(_char_name(c) for c in codes[:6]) + (", …" if len(codes) > 6 else "")
        where = _lines([line_of(i) for i in held.index[:3]])
        reasons.append(
            f"column '{col}': {int(hit.sum())} value(s) hold control characters ({names})"
            + (f", e.g. {where}" if where else "")
        )
    return reasons


def long_ids(df: pd.DataFrame, spec: ModelSpec, line_of: Callable[[Any], int | None]) -> list[str]:
    """One reason per id column (record, subject) holding ids longer than :data:`ID_CHARS` characters."""
    reasons = []
    schema = spec.data_schema
    for col in (schema.record_id, schema.subject):
        if col not in df.columns:
            continue
        ids = df[col].dropna().astype(str)
        long = ids[ids.str.len() > ID_CHARS]
        if len(long):
            ex = _examples(long.head(20).tolist(), long.index[:20].tolist(), line_of, pii=col in schema.pii)
            reasons.append(f"column '{col}': {len(long)} id(s) longer than {ID_CHARS} characters, e.g. {ex}")
    return reasons


def _as_date(value: Any) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if isinstance(value, str) and len(value) == 10 else None
    except ValueError:
        return None


def events_outside(
    df: pd.DataFrame, spec: ModelSpec, interval: tuple[dt.date, dt.date], line_of: Callable[[Any], int | None]
) -> str | None:
    """Why event times fall outside the data interval ``[start, end)`` (dates), or None when none does.

    Values that are not YYYY-MM-DD dates are left to the suite's own check.
    """
    col = spec.data_schema.event_time
    if col not in df.columns:
        return None
    start, end = interval
    days = {v: _as_date(v) for v in df[col].dropna().unique().tolist()}
    late = {v for v, d in days.items() if d is not None and not start <= d < end}
    if not late:
        return None
    rows = df[col][df[col].isin(late)]
    ex = _examples(rows.head(20).tolist(), rows.index[:20].tolist(), line_of, pii=col in spec.data_schema.pii)
    last = end - dt.timedelta(days=1)
    span = str(start) if last == start else f"{start} to {last}"
    return f"column '{col}': {len(rows)} value(s) outside the data interval ({span}), e.g. {ex}"


def ids_elsewhere(
    df: pd.DataFrame,
    spec: ModelSpec,
    known_ids: Callable[[list[str]], dict[str, str]],
    line_of: Callable[[Any], int | None],
) -> str | None:
    """Why record ids of the batch are not new (another partition holds them), or None when all are.

    Args:
        df: the parsed batch.
        spec: the model spec.
        known_ids: record ids → the other partition holding each one (ids no other partition holds are left out).
        line_of: index label → file line.
    """
    col = spec.data_schema.record_id
    if col not in df.columns:
        return None
    ids = df[col].dropna().astype(str)
    found = known_ids(sorted(set(ids.tolist())))
    if not found:
        return None
    taken = ids[ids.isin(list(found))]
    per_partition: dict[str, int] = {}
    for v in taken:
        per_partition[found[v]] = per_partition.get(found[v], 0) + 1
    ex = _examples(taken.head(20).tolist(), taken.index[:20].tolist(), line_of, pii=col in spec.data_schema.pii)
    if len(per_partition) == 1:
        [(where, n)] = per_partition.items()
        return f"column '{col}': {n} id(s) already in partition {where}, e.g. {ex}"
    counts = ", ".join(f"{n} in {p}" for p, n in sorted(per_partition.items())[:5])
    more = f", … ({len(per_partition)} partitions)" if len(per_partition) > 5 else ""
    return f"column '{col}': {len(taken)} id(s) already in other partitions ({counts}{more}), e.g. {ex}"


def validate_frame(
    df: pd.DataFrame,
    spec: ModelSpec,
    *,
    lines: Sequence[int] | None = None,
    interval: tuple[dt.date, dt.date] | None = None,
    known_ids: Callable[[list[str]], dict[str, str]] | None = None,
) -> ValidationOutcome:
    """Run the spec's suite over a parsed batch, then Ativo's own checks.

    Args:
        df: the parsed batch (with read_csv's default index, reasons name file lines).
        spec: the model spec.
        lines: the file line of each record when it is not its position + 2 (see :func:`record_lines`).
        interval: the data interval's ``[start, end)`` dates; event times outside it fail the batch, or are only
            reported under ``source.late_events: report``.
        known_ids: record ids → the other partition holding each; such ids fail the batch.
    """
    line_of = _line_finder(df, lines)
    batch = _batch_definition().get_batch(batch_parameters={"dataframe": df})
    result = batch.validate(build_suite(spec), result_format="SUMMARY")
    reasons: list[str] = []
    if not result.success:
        failed = [r for r in result.results if not r.success]
        types_broken = {
            r.expectation_config.kwargs.get("column")
            for r in failed
            if r.expectation_config.type == "expect_column_values_to_be_in_type_list"
        }
        for r in failed:
            col = r.expectation_config.kwargs.get("column")
            if col in types_broken and r.expectation_config.type != "expect_column_values_to_be_in_type_list":
                continue  # a range check over text says nothing more than the type failure
            reason = _reason(r, df, spec, line_of)
            if reason and reason not in reasons:
                reasons.append(reason)
    reasons += control_characters(df, spec, line_of) + long_ids(df, spec, line_of)
    reported: list[str] = []
    if interval is not None and (late := events_outside(df, spec, interval, line_of)):
        (reasons if spec.source.late_events == "quarantine" else reported).append(late)
    if known_ids is not None and (taken := ids_elsewhere(df, spec, known_ids, line_of)):
        reasons.append(taken)
    success = bool(result.success) and not reasons
    if not success and not reasons:
        reasons.append("the batch failed a check of the suite (see the report)")
    report = {"gx": bounded(result.to_json_dict())}
    if interval is not None:
        report["interval"] = [str(interval[0]), str(interval[1])]
    if reported:
        report["reported"] = reported
    return ValidationOutcome(success=success, reasons=reasons, rows=len(df), report=report, reported=reported)


def validate_bytes(
    data: bytes,
    spec: ModelSpec,
    *,
    interval: tuple[dt.date, dt.date] | None = None,
    known_ids: Callable[[list[str]], dict[str, str]] | None = None,
) -> tuple[ValidationOutcome, pd.DataFrame | None]:
    """Parse and validate a landing batch; returns the outcome and, when parseable, the frame.

    ``interval`` and ``known_ids`` are passed on to :func:`validate_frame`.
    """
    df, problems = read_batch(data, spec)
    if df is None:
        return ValidationOutcome(success=False, reasons=problems, rows=0, report={"parse_errors": problems}), None
    lines = record_lines(data, len(df))
    return validate_frame(df, spec, lines=lines, interval=interval, known_ids=known_ids), df
