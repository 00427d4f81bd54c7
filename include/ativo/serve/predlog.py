"""The prediction log: every decision the API returns, as Parquet partitions in the object store.

Layout: ``predictions/<spec>/date=YYYY-MM-DD/part-<writer>-<seq>.parquet`` (one writer per server process) and,
for delayed labels sent to ``/feedback``, ``labels/<spec>/date=YYYY-MM-DD/part-<writer>-<seq>.parquet``.

A request only appends its rows to an in-memory buffer. A background thread flushes every ``flush_s`` seconds (or
sooner when ``flush_rows`` are waiting) and does the costly parts there, in batches and off the response path:
the shadow version's scores, decoding the features back to their values, the top feature contributions when asked
for, and building the Arrow table a column at a time (per-row Python there held the GIL long enough to show in the
serving tail). The cyclic garbage collector does not walk the buffer (see :class:`_Buffered`). A flush
that fails (the store is down) keeps its rows and is retried; closing the log flushes what is left, so a clean
restart loses nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import orjson

from ativo.hashing import pseudonymiser
from ativo.model.served import ServedModel
from ativo.serve.validation import decode
from ativo.spec import ModelSpec
from ativo.store import prefixes
from ativo.store.objects import ObjectStore
from ativo.store.redaction import ERASED, Forgotten, Held

log = logging.getLogger(__name__)

TOP_K = 3


def prediction_id(now: float | None = None) -> str:
    """A new prediction id: its UTC date first (``20261124-…``), so lineage finds its partition directly."""
    day = dt.datetime.fromtimestamp(now or time.time(), dt.UTC).strftime("%Y%m%d")
    return f"{day}-{uuid.uuid4().hex[:20]}"


def prediction_ids(n: int, now: float | None = None) -> list[str]:
    """``n`` new prediction ids at once (as :func:`prediction_id`: the date, then 80 random bits in hex)."""
    day = dt.datetime.fromtimestamp(now or time.time(), dt.UTC).strftime("%Y%m%d")
    noise = os.urandom(10 * n).hex()
    return [f"{day}-{noise[i : i + 20]}" for i in range(0, 20 * n, 20)]


def partition_of(pred_id: str) -> str:
    """The ``date=`` partition a prediction id was written to."""
    day = pred_id.split("-", 1)[0]
    if len(day) != 8 or not day.isdigit():
        raise ValueError(f"{pred_id!r} is not a prediction id (expected YYYYMMDD-<hex>)")
    return f"{day[:4]}-{day[4:6]}-{day[6:]}"


@dataclass
class Entry:
    """The rows of one request, as the hot path appends them."""

    ts: float
    request_id: str
    ids: list[str]
    matrix: np.ndarray
    subjects: list[str | None]
    models: list[ServedModel]  # per row: the version that answered
    routes: list[str]
    fallback: list[bool]
    scores: np.ndarray
    decisions: np.ndarray
    latency_ms: float
    shadow: ServedModel | None
    thresholds: np.ndarray | None = None  # per row, when a decision policy set them


class _Buffered(NamedTuple):
    """An :class:`Entry` as the buffer keeps it until the next flush.

    Only tuples of strings, numbers and arrays, and versions by key: the cyclic garbage collector stops tracking
    such a tuple the first time it sees it, so thousands of buffered requests add nothing to a collection's walk
    (as dataclasses with lists they made each full collection take 7-16 ms, in the request path).
    """

    ts: float
    request_id: str
    ids: tuple[str, ...]
    matrix: np.ndarray
    subjects: tuple[str | None, ...]
    models: tuple[int, ...]
    routes: tuple[str, ...]
    fallback: tuple[bool, ...]
    scores: np.ndarray
    decisions: np.ndarray
    latency_ms: float
    shadow: int | None
    thresholds: np.ndarray | None


class _Writer:
    """Buffer + background flusher + atomic Parquet objects under one log's prefix."""

    def __init__(
        self, store: ObjectStore, kind: prefixes.LogKind, spec_name: str, flush_s: float, flush_rows: int
    ) -> None:
        self.store = store
        self.kind, self.spec_name = kind, spec_name
        self.prefix = prefixes.serving_log(kind, spec_name)
        self.flush_s = flush_s
        self.flush_rows = flush_rows
        self.writer = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._pending: list[Any] = []
        self._pending_rows = 0
        self._unwritten: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._seq = 0
        self._thread: threading.Thread | None = None
        self.written_rows = 0
        self.failed_flushes = 0
        self.last_error: str | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=f"ativo-log-{self.prefix}", daemon=True)
        self._thread.start()

    def _append(self, item: Any, rows: int) -> None:
        with self._lock:
            self._push(item, rows)

    def _push(self, item: Any, rows: int) -> None:  # with self._lock held
        self._pending.append(item)
        self._pending_rows += rows
        if self._pending_rows >= self.flush_rows:
            self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_s)
            self._wake.clear()
            self.flush()

    def flush(self) -> int:
        """Write what is buffered; returns the rows written (a store failure keeps the rest for the next flush)."""
        with self._flush_lock:
            with self._lock:
                items, self._pending, self._pending_rows = self._pending, [], 0
            if items:
                try:
                    tables = self._tables(items)
                except Exception:
                    log.exception("prediction log: cannot build the table of %d item(s); kept for retry", len(items))
                    with self._lock:
                        self._pending[:0] = items
                        self._pending_rows += sum(self._rows(i) for i in items)
                    return 0
                self._unwritten.extend(tables.items())
            written = 0
            while self._unwritten:
                day, table = self._unwritten[0]
                folder = prefixes.serving_log(self.kind, self.spec_name, day)
                key = prefixes.log_part(folder, self.writer, self._seq + 1)
                try:
                    self.store.put_bytes(key, parquet_bytes(table))
                except Exception as err:  # the store is down: keep the table, try again at the next flush
                    self.failed_flushes += 1
                    self.last_error = f"{type(err).__name__}: {err}"
                    log.error("prediction log: writing %s failed, will retry: %s", key, err)
                    return written
                self._seq += 1
                self._unwritten.pop(0)
                written += table.num_rows
            self.written_rows += written
            self.last_error = None
            return written

    @property
    def unwritten_rows(self) -> int:
        """Rows buffered or waiting for the store."""
        return self._pending_rows + sum(t.num_rows for _, t in self._unwritten)

    def close(self, attempts: int = 3) -> None:
        """Stop the flusher and write everything left (a few attempts if the store fails)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        for attempt in range(attempts):
            self.flush()
            if not self._pending and not self._unwritten:
                return
            time.sleep(0.5 * (attempt + 1))
        log.error(
            "prediction log: %d row(s) could not be written to %s at shutdown: %s",
            self.unwritten_rows,
            self.prefix,
            self.last_error,
        )

    def _rows(self, item: Any) -> int:
        raise NotImplementedError

    def _tables(self, items: list[Any]) -> dict[str, Any]:
        raise NotImplementedError


def parquet_bytes(table: Any) -> bytes:
    """The log's Parquet encoding of an Arrow table (zstd)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return bytes(sink.getvalue().to_pybytes())


class PredictionLog(_Writer):
    """Every decision with its id, time, version, route, pseudonymised subject, features, score and explanation.

    Args:
        store: the object store.
        spec: the model spec.
        pepper: the subject pseudonymisation secret.
        flush_s / flush_rows: when the buffer is written.
        contributions: ``approx`` (XGBoost's Saabas attributions, ~50x cheaper; they sum to the margin too),
            ``exact`` (TreeSHAP, ~1.7 ms per row and core) or ``none`` (the default: the row keeps its features and
            version, from which lineage computes exact contributions when a decision is looked up; writing approx
            ones took 30 % of a loaded server's CPU).
        on_shadow: called with (shadow model, scores, failed rows, seconds) after each batch of shadow scoring.
    """

    def __init__(
        self,
        store: ObjectStore,
        spec: ModelSpec,
        pepper: bytes,
        *,
        flush_s: float = 2.0,
        flush_rows: int = 5000,
        contributions: str = "none",
        on_shadow: Callable[[ServedModel, np.ndarray, int, float], None] | None = None,
    ) -> None:
        if contributions not in ("approx", "exact", "none"):
            raise ValueError(f"contributions must be approx, exact or none, got {contributions!r}")
        super().__init__(store, prefixes.PREDICTIONS, spec.name, flush_s, flush_rows)
        self.spec = spec
        self.pepper = pepper
        self.contributions = contributions
        self.on_shadow = on_shadow
        self.threshold = spec.gates.decision_threshold
        self._booster_copies: dict[int, Any] = {}
        self._pseudonym = pseudonymiser(pepper)
        self._models: dict[int, ServedModel] = {}  # the versions buffered rows refer to, by key
        self._names_json: Any = None

    def append(self, entry: Entry) -> None:
        """Buffer one request's rows (the hot path: no I/O, no scoring)."""
        with self._lock:  # the version keys and the buffer change together (see _prune)
            shadow = None if entry.shadow is None else self._key(entry.shadow)
            item = _Buffered(
                entry.ts,
                entry.request_id,
                tuple(entry.ids),
                entry.matrix,
                tuple(entry.subjects),
                tuple(self._key(m) for m in entry.models),
                tuple(entry.routes),
                tuple(entry.fallback),
                entry.scores,
                entry.decisions,
                entry.latency_ms,
                shadow,
                entry.thresholds,
            )
            self._push(item, len(entry.ids))

    def _key(self, model: ServedModel) -> int:
        key = id(model)
        if key not in self._models:
            self._models[key] = model
        return key

    def _prune(self, flushing: list[_Buffered]) -> None:
        """Forget the versions no buffered row names any more (a retired version's booster is freed)."""
        with self._lock:
            used = {k for e in (*flushing, *self._pending) for k in (*e.models, e.shadow)}
            for key in [k for k in self._models if k not in used]:
                del self._models[key]

    def _rows(self, item: Any) -> int:
        return len(item.ids)

    def _booster(self, model: ServedModel) -> Any:
        # A copy for this thread: the serving thread keeps predicting with the original meanwhile.
        key = id(model.booster)
        if key not in self._booster_copies:
            if len(self._booster_copies) > 8:
                self._booster_copies.clear()
            self._booster_copies[key] = model.booster.copy()
        return self._booster_copies[key]

    def _top(self, model: ServedModel, matrix: np.ndarray) -> Any:
        """Each row's TOP_K largest contributions as a JSON string (built column-wise by Arrow, not row by row)."""
        import pyarrow as pa
        import pyarrow.compute as pc
        import xgboost as xgb

        if self.contributions == "none" or len(matrix) == 0:
            return pa.array([""] * len(matrix), pa.string())
        booster = self._booster(model)
        dm = xgb.DMatrix(
            matrix,
            feature_names=self.spec.data_schema.feature_names,
            feature_types=booster.feature_types,
            enable_categorical=True,
        )
        contribs = booster.predict(dm, pred_contribs=True, approx_contribs=self.contributions == "approx")[:, :-1]
        contribs = np.round(np.nan_to_num(contribs.astype(np.float32)), 5)
        if self._names_json is None:
            self._names_json = pa.array([orjson.dumps(n).decode() for n in self.spec.data_schema.feature_names])
        order = np.argsort(-np.abs(contribs), axis=1)[:, :TOP_K]
        rows = np.arange(len(matrix))
        parts: list[Any] = []
        for k in range(order.shape[1]):
            parts += [
                pa.scalar('{"feature":' if k == 0 else ',{"feature":'),
                self._names_json.take(order[:, k]),
                pa.scalar(',"contribution":'),
                pc.cast(pa.array(contribs[rows, order[:, k]]), pa.string()),
                pa.scalar("}"),
            ]
        return pc.binary_join_element_wise(pa.scalar("["), *parts, pa.scalar("]"), pa.scalar(""))

    def _tables(self, items: list[_Buffered]) -> dict[str, Any]:
        """The buffered requests as one Arrow table per day, built column by column.

        The flusher holds the GIL only briefly: the per-row Python this replaced (a JSON string and a date string
        per row) held it for ~150 ms per 5,000 rows and stalled the event loop: the serving tail.
        """
        import pyarrow as pa

        counts = np.fromiter((len(e.ids) for e in items), dtype=np.int64, count=len(items))
        n = int(counts.sum())
        matrix = np.concatenate([e.matrix for e in items])
        known = self._models
        models = [known[k] for e in items for k in e.models]
        top: Any = None
        by_version: dict[int, list[int]] = {}
        for i, m in enumerate(models):
            by_version.setdefault(id(m), []).append(i)
        if len(by_version) == 1:
            top = self._top(models[0], matrix)
        else:
            pieces = np.empty(n, dtype=object)
            for idxs in by_version.values():
                sel = np.array(idxs)
                pieces[sel] = self._top(models[idxs[0]], matrix[sel]).to_numpy(zero_copy_only=False)
            top = pa.array(pieces, pa.string())
        shadow_version = np.full(n, None, dtype=object)
        shadow_score = np.full(n, np.nan)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        spans: dict[int, tuple[ServedModel, list[np.ndarray]]] = {}
        for e, start, count in zip(items, starts, counts, strict=True):
            if e.shadow is not None:
                spans.setdefault(e.shadow, (known[e.shadow], []))[1].append(np.arange(start, start + count))
        for shadow, ranges in spans.values():
            sel = np.concatenate(ranges)
            t0 = time.perf_counter()
            failed = 0
            try:
                scores = self._booster(shadow).inplace_predict(matrix[sel])
            except Exception as err:
                failed = len(sel)
                scores = np.full(len(sel), np.nan)
                log.warning("shadow version %s failed to score %d row(s): %s", shadow.version, failed, err)
            shadow_score[sel] = scores
            shadow_version[sel] = shadow.version
            if self.on_shadow is not None:
                self.on_shadow(shadow, scores, failed, time.perf_counter() - t0)
        ts = np.repeat(np.fromiter((e.ts for e in items), dtype=np.float64, count=len(items)), counts)
        pseudonyms: dict[str, str] = {}
        subjects = [
            None if s is None else pseudonyms.get(s) or pseudonyms.setdefault(s, self._pseudonym(s))
            for e in items
            for s in e.subjects
        ]
        thresholds = [e.thresholds if e.thresholds is not None else np.full(len(e.ids), self.threshold) for e in items]
        cols: dict[str, Any] = {
            "prediction_id": pa.array([i for e in items for i in e.ids], pa.string()),
            "request_id": pa.array(
                np.repeat(np.array([e.request_id for e in items], dtype=object), counts), pa.string()
            ),
            "ts": pa.array((ts * 1e6).astype("int64"), type=pa.timestamp("us", tz="UTC")),
            "model": pa.array([m.name for m in models], pa.string()),
            "version": pa.array([m.version for m in models], pa.string()),
            "route": pa.array([r for e in items for r in e.routes], pa.string()),
            "fallback": pa.array([f for e in items for f in e.fallback], pa.bool_()),
            "subject": pa.array(subjects, pa.string()),
            "score": np.concatenate([e.scores for e in items]).astype(np.float64),
            "decision": np.concatenate([e.decisions for e in items]).astype(np.int8),
            "threshold": np.concatenate(thresholds).astype(np.float64),
            "top_contributions": top,
            "contributions_method": pa.array([self.contributions] * n, pa.string()),
            "latency_ms": np.repeat(
                np.fromiter((e.latency_ms for e in items), dtype=np.float64, count=len(items)), counts
            ),
            "shadow_version": pa.array(shadow_version, pa.string()),
            "shadow_score": shadow_score,
        }
        for name, col in decode(self.spec, matrix).items():
            cols[f"f_{name}"] = col
        if len(self._models) > 4:
            self._prune(items)
        return _by_day(pa.table(cols), ts)


class LabelLog(_Writer):
    """Delayed ground truth (``/feedback``): prediction id, label, when it arrived."""

    def __init__(self, store: ObjectStore, spec: ModelSpec, *, flush_s: float = 2.0, flush_rows: int = 5000) -> None:
        super().__init__(store, prefixes.LABELS, spec.name, flush_s, flush_rows)

    def append(self, ts: float, ids: list[str], labels: list[int]) -> None:
        """Buffer labels (as tuples, which the garbage collector stops tracking: see :class:`_Buffered`)."""
        self._append((ts, tuple(ids), tuple(labels)), len(ids))

    def _rows(self, item: Any) -> int:
        return len(item[1])

    def _tables(self, items: list[Any]) -> dict[str, Any]:
        import pyarrow as pa

        ts = np.concatenate([np.full(len(i[1]), i[0]) for i in items])
        table = pa.table(
            {
                "prediction_id": [p for i in items for p in i[1]],
                "label": pa.array([lab for i in items for lab in i[2]], type=pa.int8()),
                "ts": pa.array((ts * 1e6).astype("int64"), type=pa.timestamp("us", tz="UTC")),
            }
        )
        return _by_day(table, ts)


def _by_day(table: Any, ts: np.ndarray) -> dict[str, Any]:
    """The rows of ``table`` by the UTC date of their time stamps (``ts``, epoch seconds): one object per day."""
    import pyarrow as pa

    days = (np.asarray(ts) * 1e6).astype("datetime64[us]").astype("datetime64[D]")
    unique = np.unique(days)
    if len(unique) == 1:
        return {str(unique[0]): table}
    return {str(d): table.filter(pa.array(days == d)) for d in unique}


def read_log(store: ObjectStore, kind: prefixes.LogKind, spec_name: str, days: list[str] | None = None) -> Any:
    """Every row of the prediction (``kind="predictions"``) or label log, optionally of some ``date=`` days only.

    Returns:
        A pandas DataFrame (empty when nothing was written).
    """
    import io

    import pandas as pd
    import pyarrow.parquet as pq

    keys: list[str] = []
    wanted: list[str | None] = list(days) if days else [None]
    for day in wanted:
        keys.extend(k for k in store.list(prefixes.serving_log(kind, spec_name, day)) if k.endswith(".parquet"))
    if not keys:
        return pd.DataFrame()
    frames = [pq.read_table(io.BytesIO(store.get_bytes(k))).to_pandas() for k in keys]
    return pd.concat(frames, ignore_index=True)


# --- erasure: the logs forget a subject ------------------------------------------------------------------------------


def held_predictions(store: ObjectStore, spec_name: str, pseudonyms: Collection[str]) -> Held:
    """The logged decisions about ``pseudonyms`` (the log's keyed subject pseudonyms), read without a change.

    Returns:
        ``places``: object key → their rows there; ``found``: the pseudonyms with a decision; ``ids``: the
        decisions' prediction ids (their labels are keyed by these).
    """
    import io

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    out = Held()
    wanted = pa.array(sorted(set(pseudonyms)), "string")
    for key in store.list(prefixes.predictions(spec_name)):
        if not key.endswith(".parquet"):
            continue
        table = pq.read_table(io.BytesIO(store.get_bytes(key)), columns=["prediction_id", "subject"])
        hits = table.filter(pc.fill_null(pc.is_in(table["subject"], value_set=wanted), False))
        if hits.num_rows:
            out.places[key] = hits.num_rows
            out.found |= set(hits["subject"].to_pylist())
            out.ids |= set(hits["prediction_id"].to_pylist())
    return out


def forget_predictions(
    store: ObjectStore, spec_name: str, pseudonyms: Collection[str], quotes: Collection[str] = ()
) -> Forgotten:
    """Remove the decisions about ``pseudonyms`` from the prediction log; redact ``quotes`` in request ids.

    A request id quoting a subject or record id (client-chosen, logged by a server older than the id checks of
    :mod:`ativo.api.app`) belongs to someone else's decision: the row stays and its id becomes ``[erased]``, so
    nobody can wedge an erasure by quoting a subject. Each object is rewritten whole under its key (the servers only
    ever add new objects); the others keep their bytes, and a second call changes nothing.

    Returns:
        ``places``: object key → rows removed and ids redacted; ``found``: the pseudonyms that had decisions;
        ``ids``: the prediction ids of the decisions removed (their labels go next: :func:`forget_labels`).
    """
    return _forget_rows(
        store, prefixes.predictions(spec_name), "subject", pseudonyms, "request_id", quotes, ids="prediction_id"
    )


def forget_labels(
    store: ObjectStore, spec_name: str, prediction_ids: Collection[str], quotes: Collection[str] = ()
) -> Forgotten:
    """Remove the labels of ``prediction_ids`` from the label log; redact ``quotes`` in the other prediction ids.

    A feedback's prediction id that quotes a subject or record id (one the server never issued, logged before the
    servers refused such ids) becomes ``[erased]`` and its row stays. As :func:`forget_predictions`, object by object.

    Returns:
        ``places``: object key → rows removed and ids redacted; ``found``: the prediction ids that had labels.
    """
    return _forget_rows(store, prefixes.labels(spec_name), "prediction_id", prediction_ids, "prediction_id", quotes)


def _forget_rows(
    store: ObjectStore,
    prefix: str,
    match: str,
    values: Collection[str],
    quoted_in: str,
    quotes: Collection[str],
    ids: str | None = None,
) -> Forgotten:
    """Each object under ``prefix`` without the rows whose ``match`` is in ``values``.

    ``quotes`` are redacted in ``quoted_in``; the ``ids`` column of the rows removed is returned as
    :attr:`Forgotten.ids`.
    """
    import io

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    out = Forgotten()
    value_set = pa.array(sorted(set(values)), "string")
    quoted = sorted(set(quotes))
    for key in store.list(prefix):
        if not key.endswith(".parquet"):
            continue
        table = pq.read_table(io.BytesIO(store.get_bytes(key)))
        hit = pc.fill_null(pc.is_in(table[match], value_set=value_set), False)
        n = int(pc.sum(hit).as_py() or 0)
        if n:
            gone = table.filter(hit)
            out.found |= set(gone[match].to_pylist())
            if ids is not None:
                out.ids |= set(gone[ids].to_pylist())
            table = table.filter(pc.invert(hit))
        table, redacted = _redact_quotes(table, quoted_in, quoted)
        if n or redacted:
            store.put_bytes(key, parquet_bytes(table))  # the whole object, atomically
            out.places[key] = n + redacted
    return out


def _redact_quotes(table: Any, column: str, quotes: list[str]) -> tuple[Any, int]:
    """``table`` with every value of ``column`` that contains one of ``quotes`` replaced by ``[erased]``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if column not in table.column_names or not quotes or table.num_rows == 0:
        return table, 0
    col = table[column].cast(pa.string())
    hit = pa.array([False] * table.num_rows)
    for q in quotes:
        hit = pc.or_(hit, pc.fill_null(pc.match_substring(col, q), False))
    n = int(pc.sum(hit).as_py() or 0)
    if not n:
        return table, 0
    redacted = pc.if_else(hit, pa.scalar(ERASED), col)
    return table.set_column(table.column_names.index(column), column, redacted.cast(table.schema.field(column).type)), n
