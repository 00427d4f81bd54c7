"""Batch validation: a Great Expectations suite generated from the spec, with reasons a person can read.

Parsing failures (empty file, bytes that are not UTF-8, text that is not CSV) are caught before GX runs; then
the suite checks columns, types, ranges, category sets, nulls, unique record ids and row-count bounds.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ativo.spec import ModelSpec

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

INT_TYPES = ["int64", "Int64", "int32", "Int32"]
FLOAT_TYPES = ["float64", "Float64", "float32", *INT_TYPES]


@dataclass
class ValidationOutcome:
    """What validation found.

    Attributes:
        success: True when every expectation passed.
        reasons: one readable line per failure (empty on success).
        rows: rows parsed (0 when the file could not be parsed).
        report: the full report (JSON-serialisable), including GX's own result.
    """

    success: bool
    reasons: list[str]
    rows: int
    report: dict[str, Any] = field(default_factory=dict)


def _quiet_gx() -> Any:
    for name in ("great_expectations._docs_decorators", "great_expectations"):
        logging.getLogger(name).setLevel(logging.WARNING)
    import great_expectations as gx

    return gx


def read_batch(data: bytes, spec: ModelSpec) -> tuple[pd.DataFrame | None, list[str]]:
    """Parse landing bytes into a frame, or say why they cannot be parsed.

    Categorical, id and date columns are read as text; numeric columns are left to the CSV parser so that a
    wrong type shows up as a wrong dtype in the suite.
    """
    import pandas as pd

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
            io.StringIO(text), dtype=dict.fromkeys(text_cols, "str"), keep_default_na=False, na_values=[""],
            low_memory=False,
        )  # fmt: skip
    except (pd.errors.ParserError, ValueError) as err:
        return None, [f"file is not parseable as CSV: {str(err).strip()[:300]}"]
    return df, []


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


def _examples(values: list[Any], k: int = 3) -> str:
    seen: list[str] = []
    for v in values:
        s = repr(v)
        if s not in seen:
            seen.append(s)
        if len(seen) == k:
            break
    return ", ".join(seen)


def _reason(res: Any, df: pd.DataFrame) -> str | None:
    cfg = res.expectation_config
    kind, kw, r = cfg.type, cfg.kwargs, res.result or {}
    col = kw.get("column")
    if col is not None and col not in df.columns:
        return None  # reported once by the column-set expectation
    n = r.get("unexpected_count")
    ex = _examples(r.get("partial_unexpected_list") or [])
    if res.exception_info and res.exception_info.get("raised_exception"):
        return f"column '{col}': check {kind} could not run ({res.exception_info.get('exception_message')})"
    if kind == "expect_table_columns_to_match_set":
        observed = set(r.get("observed_value") or [])
        expected = set(kw["column_set"])
        parts = []
        if expected - observed:
            parts.append("missing column(s): " + ", ".join(sorted(expected - observed)))
        if observed - expected:
            parts.append("unexpected column(s): " + ", ".join(sorted(observed - expected)))
        return "; ".join(parts) or "columns do not match the spec"
    if kind == "expect_table_row_count_to_be_between":
        return f"{r.get('observed_value')} rows; expected between {kw['min_value']} and {kw['max_value']}"
    if kind == "expect_column_values_to_not_be_null":
        return f"column '{col}': {n} missing value(s)"
    if kind == "expect_column_values_to_be_unique":
        return f"column '{col}': {n} rows share a duplicated value, e.g. {ex}"
    if kind == "expect_column_values_to_be_in_set":
        return f"column '{col}': {n} value(s) not among the {len(kw['value_set'])} allowed, e.g. {ex}"
    if kind == "expect_column_values_to_be_in_type_list":
        return f"column '{col}': values are of type {r.get('observed_value')}, expected a number ({kw['type_list'][0]})"
    if kind == "expect_column_values_to_be_between":
        lo, hi = (f"{v:g}" if isinstance(v, float) else str(v) for v in (kw.get("min_value"), kw.get("max_value")))
        return f"column '{col}': {n} value(s) outside [{lo}, {hi}], e.g. {ex}"
    if kind == "expect_column_values_to_match_regex":
        return f"column '{col}': {n} value(s) not a YYYY-MM-DD date, e.g. {ex}"
    return f"{kind} failed on {col or 'the table'}"


def validate_frame(df: pd.DataFrame, spec: ModelSpec) -> ValidationOutcome:
    """Run the spec's suite over a parsed batch."""
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
            reason = _reason(r, df)
            if reason and reason not in reasons:
                reasons.append(reason)
    return ValidationOutcome(
        success=bool(result.success), reasons=reasons, rows=len(df), report={"gx": result.to_json_dict()}
    )


def validate_bytes(data: bytes, spec: ModelSpec) -> tuple[ValidationOutcome, pd.DataFrame | None]:
    """Parse and validate a landing batch; returns the outcome and, when parseable, the frame."""
    df, problems = read_batch(data, spec)
    if df is None:
        return ValidationOutcome(success=False, reasons=problems, rows=0, report={"parse_errors": problems}), None
    return validate_frame(df, spec), df
