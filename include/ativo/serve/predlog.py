"""The prediction log: every decision the API returns, as Parquet partitions in the object store.

Layout: ``predictions/<spec>/date=YYYY-MM-DD/part-<writer>-<seq>.parquet`` (one writer per server process) and,
for delayed labels sent to ``/feedback``, ``labels/<spec>/date=YYYY-MM-DD/part-<writer>-<seq>.parquet``.

A request only appends its rows to an in-memory buffer. A background thread flushes every ``flush_s`` seconds (or
sooner when ``flush_rows`` are waiting) and does the costly parts there, in batches and off the response path:
the top feature contributions, the shadow version's scores, decoding the features back to their values. A flush
that fails (the store is down) keeps its rows and is retried; closing the log flushes what is left, so a clean
restart loses nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from ativo.model.served import ServedModel
from ativo.serve.validation import decode
from ativo.spec import ModelSpec
from ativo.store.objects import ObjectStore

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

TOP_K = 3


def prediction_id(now: float | None = None) -> str:
    """A new prediction id: its UTC date first (``20261124-…``), so lineage finds its partition directly."""
    day = dt.datetime.fromtimestamp(now or time.time(), dt.UTC).strftime("%Y%m%d")
    return f"{day}-{uuid.uuid4().hex[:20]}"


def partition_of(pred_id: str) -> str:
    """The ``date=`` partition a prediction id was written to."""
    day = pred_id.split("-", 1)[0]
    if len(day) != 8 or not day.isdigit():
        raise ValueError(f"{pred_id!r} is not a prediction id (expected YYYYMMDD-<hex>)")
    return f"{day[:4]}-{day[4:6]}-{day[6:]}"


def pseudonymise(subject: str, pepper: bytes) -> str:
    """A subject id as the log stores it: keyed HMAC-SHA256, so the id itself is never written."""
    return hmac.new(pepper, subject.encode(), hashlib.sha256).hexdigest()[:32]


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


class _Writer:
    """Buffer + background flusher + atomic Parquet objects under one prefix."""

    def __init__(self, store: ObjectStore, prefix: str, flush_s: float, flush_rows: int) -> None:
        self.store = store
        self.prefix = prefix.strip("/")
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
                key = f"{self.prefix}/date={day}/part-{self.writer}-{self._seq + 1:06d}.parquet"
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
        log.error("prediction log: %d row(s) could not be written to %s at shutdown: %s", self.unwritten_rows,
                  self.prefix, self.last_error)  # fmt: skip

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
            ``exact`` (TreeSHAP, ~1.7 ms per row and core) or ``none``.
        on_shadow: called with (shadow model, scores, failed rows, seconds) after each batch of shadow scoring.
    """

    def __init__(self, store: ObjectStore, spec: ModelSpec, pepper: bytes, *, flush_s: float = 2.0,
                 flush_rows: int = 5000, contributions: str = "approx",
                 on_shadow: Callable[[ServedModel, np.ndarray, int, float], None] | None = None) -> None:  # fmt: skip
        if contributions not in ("approx", "exact", "none"):
            raise ValueError(f"contributions must be approx, exact or none, got {contributions!r}")
        super().__init__(store, f"predictions/{spec.name}", flush_s, flush_rows)
        self.spec = spec
        self.pepper = pepper
        self.contributions = contributions
        self.on_shadow = on_shadow
        self.threshold = spec.gates.decision_threshold
        self._booster_copies: dict[int, Any] = {}

    def append(self, entry: Entry) -> None:
        """Buffer one request's rows (the hot path: no I/O, no scoring)."""
        self._append(entry, len(entry.ids))

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

    def _top(self, model: ServedModel, matrix: np.ndarray) -> list[str]:
        import xgboost as xgb

        if self.contributions == "none" or len(matrix) == 0:
            return [""] * len(matrix)
        booster = self._booster(model)
        dm = xgb.DMatrix(matrix, feature_names=self.spec.data_schema.feature_names,
                         feature_types=booster.feature_types, enable_categorical=True)  # fmt: skip
        contribs = booster.predict(dm, pred_contribs=True, approx_contribs=self.contributions == "approx")[:, :-1]
        names = self.spec.data_schema.feature_names
        order = np.argsort(-np.abs(contribs), axis=1)[:, :TOP_K]
        return [
            orjson.dumps([{"feature": names[j], "contribution": round(float(row[j]), 5)} for j in idx]).decode()
            for row, idx in zip(contribs, order, strict=True)
        ]

    def _tables(self, items: list[Entry]) -> dict[str, Any]:
        import pyarrow as pa

        matrix = np.concatenate([e.matrix for e in items])
        models = [m for e in items for m in e.models]
        n = len(models)
        top = [""] * n
        by_version: dict[int, list[int]] = {}
        for i, m in enumerate(models):
            by_version.setdefault(id(m), []).append(i)
        for idxs in by_version.values():
            sel = np.array(idxs)
            for i, t in zip(idxs, self._top(models[idxs[0]], matrix[sel]), strict=True):
                top[i] = t
        shadow_version: list[str | None] = [None] * n
        shadow_score = np.full(n, np.nan)
        offset = 0
        spans: dict[int, tuple[ServedModel, list[int]]] = {}
        for e in items:
            if e.shadow is not None:
                spans.setdefault(id(e.shadow), (e.shadow, []))[1].extend(range(offset, offset + len(e.ids)))
            offset += len(e.ids)
        for shadow, idxs in spans.values():
            sel = np.array(idxs)
            t0 = time.perf_counter()
            failed = 0
            try:
                scores = self._booster(shadow).inplace_predict(matrix[sel])
            except Exception as err:
                failed = len(idxs)
                scores = np.full(len(idxs), np.nan)
                log.warning("shadow version %s failed to score %d row(s): %s", shadow.version, failed, err)
            shadow_score[sel] = scores
            for i in idxs:
                shadow_version[i] = shadow.version
            if self.on_shadow is not None:
                self.on_shadow(shadow, scores, failed, time.perf_counter() - t0)
        ts = np.concatenate([np.full(len(e.ids), e.ts) for e in items])
        cols: dict[str, Any] = {
            "prediction_id": [i for e in items for i in e.ids],
            "request_id": [e.request_id for e in items for _ in e.ids],
            "ts": pa.array((ts * 1e6).astype("int64"), type=pa.timestamp("us", tz="UTC")),
            "model": [m.name for m in models],
            "version": [m.version for m in models],
            "route": [r for e in items for r in e.routes],
            "fallback": [f for e in items for f in e.fallback],
            "subject": [pseudonymise(s, self.pepper) if s else None for e in items for s in e.subjects],
            "score": np.concatenate([e.scores for e in items]).astype(np.float64),
            "decision": np.concatenate([e.decisions for e in items]).astype(np.int8),
            "threshold": np.concatenate(
                [e.thresholds if e.thresholds is not None else np.full(len(e.ids), self.threshold) for e in items]
            ),  # fmt: skip
            "top_contributions": top,
            "contributions_method": [self.contributions] * n,
            "latency_ms": np.concatenate([np.full(len(e.ids), e.latency_ms) for e in items]),
            "shadow_version": shadow_version,
            "shadow_score": shadow_score,
        }
        for name, col in decode(self.spec, matrix).items():
            cols[f"f_{name}"] = col
        return _by_day(pa.table(cols), ts)


class LabelLog(_Writer):
    """Delayed ground truth (``/feedback``): prediction id, label, when it arrived."""

    def __init__(self, store: ObjectStore, spec: ModelSpec, *, flush_s: float = 2.0, flush_rows: int = 5000) -> None:
        super().__init__(store, f"labels/{spec.name}", flush_s, flush_rows)

    def append(self, ts: float, ids: list[str], labels: list[int]) -> None:
        """Buffer labels."""
        self._append((ts, ids, labels), len(ids))

    def _rows(self, item: Any) -> int:
        return len(item[1])

    def _tables(self, items: list[Any]) -> dict[str, Any]:
        import pyarrow as pa

        ts = np.concatenate([np.full(len(i[1]), i[0]) for i in items])
        table = pa.table({
            "prediction_id": [p for i in items for p in i[1]],
            "label": pa.array([lab for i in items for lab in i[2]], type=pa.int8()),
            "ts": pa.array((ts * 1e6).astype("int64"), type=pa.timestamp("us", tz="UTC")),
        })  # fmt: skip
        return _by_day(table, ts)


def _by_day(table: Any, ts: np.ndarray) -> dict[str, Any]:
    """The rows of ``table`` by the UTC date of their time stamps (``ts``, epoch seconds): one object per day."""
    import pyarrow as pa

    days = np.array([dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d") for t in ts])
    return {d: table.filter(pa.array(days == d)) for d in sorted(set(days.tolist()))}


def read_log(store: ObjectStore, kind: str, spec_name: str, days: list[str] | None = None) -> Any:
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
        prefix = f"{kind}/{spec_name}" + (f"/date={day}" if day else "")
        keys.extend(k for k in store.list(prefix) if k.endswith(".parquet"))
    if not keys:
        return pd.DataFrame()
    frames = [pq.read_table(io.BytesIO(store.get_bytes(k))).to_pandas() for k in keys]
    return pd.concat(frames, ignore_index=True)
