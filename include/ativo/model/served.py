"""A loaded model version and how to score rows with it (the gates and the inference API share it)."""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ativo.model import encoding
from ativo.spec import ModelSpec

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import xgboost as xgb

    from ativo.model.policy import DecisionPolicy


BLOCK_ROWS = 64  # XGBoost's CPU predictor hands each thread blocks of this many rows
BATCH_THREADS = 2


class DenseScorer:
    """XGBoost's in-place prediction of a float32 matrix, without the set-up it repeats on every call.

    ``Booster.inplace_predict`` makes a new proxy matrix per call, whose context reads the cgroup CPU quota files
    (two ``openat`` and ``read`` each call, seen with strace), serialises its arguments to JSON, and wraps the
    result through a class it defines per call: 0.16 ms of a single row's 0.2 ms, against 0.07 ms for the
    prediction itself. This makes the same C call (``XGBoosterPredictFromDense``) with one proxy per thread
    and the arguments encoded once. It uses XGBoost's ctypes binding (``xgboost.core._LIB``, pinned in
    requirements.txt); ``tests/model/test_dense_scorer.py`` holds it to ``inplace_predict``'s results.
    Not shared between threads: :meth:`ServedModel.score` keeps one per thread.
    """

    def __init__(self, booster: xgb.Booster) -> None:
        import numpy as np
        from xgboost.core import _LIB, _ProxyDMatrix, c_bst_ulong, make_jcargs

        self._booster = booster  # holds the handle alive
        self._proxy = _ProxyDMatrix()
        self._predict = _LIB.XGBoosterPredictFromDense
        self._args = make_jcargs(
            type=0,
            training=False,
            iteration_begin=0,
            iteration_end=0,
            missing=float("nan"),
            strict_shape=False,
            cache_id=0,
        )
        self._ulong = c_bst_ulong
        self._error = _LIB.XGBGetLastError
        self._np = np

    def __call__(self, matrix: np.ndarray) -> np.ndarray:
        """Positive-class probabilities of the rows of an encoded 2-D matrix (a copy, owned by the caller)."""
        np = self._np
        m = (
            matrix
            if matrix.dtype == np.float32 and matrix.flags.c_contiguous
            else np.ascontiguousarray(matrix, dtype=np.float32)
        )
        n, k = m.shape
        iface = (
            b'{"data": [%d, true], "strides": null, "descr": [["", "<f4"]], "typestr": "<f4", '
            b'"shape": [%d, %d], "version": 3}' % (m.ctypes.data, n, k)
        )
        preds = ctypes.POINTER(ctypes.c_float)()
        shape = ctypes.POINTER(self._ulong)()
        dims = self._ulong()
        if (
            self._predict(
                self._booster.handle,
                iface,
                self._args,
                self._proxy.handle,
                ctypes.byref(shape),
                ctypes.byref(dims),
                ctypes.byref(preds),
            )
            != 0
        ):
            from xgboost.core import XGBoostError

            raise XGBoostError(self._error().decode())
        out = np.ctypeslib.as_array(preds, shape=(n,)).copy()  # the booster reuses its buffer at the next call
        return out


class Lineage:
    """What a version's registry tags say about where it came from."""

    tags: dict[str, str]

    @property
    def run_id(self) -> str | None:
        """The MLflow run that trained it."""
        return self.tags.get("ativo.mlflow_run_id")

    @property
    def dataset_version(self) -> str | None:
        """The dataset version it was trained on."""
        return self.tags.get("ativo.dataset_version")


@dataclass
class ServedModel(Lineage):
    """A loaded model version and how to score rows with it."""

    spec: ModelSpec
    name: str
    version: str
    booster: xgb.Booster
    sha256: str
    tags: dict[str, str] = field(default_factory=dict)
    files: tuple[str, ...] = ()
    #: the per-group thresholds the fairness gate's mitigation approved, when it approved any
    policy: DecisionPolicy | None = None
    _scorers: threading.local = field(default_factory=threading.local, repr=False, compare=False)

    def encode(self, records: list[dict[str, Any]]) -> np.ndarray:
        """Rows (feature name → value) as the booster's float matrix (see :func:`encoding.encode_records`)."""
        return encoding.encode_records(self.spec, records)

    def encode_frame(self, df: pd.DataFrame) -> np.ndarray:
        """A feature frame as the same encoded matrix as :meth:`encode`."""
        return encoding.encode_frame(self.spec, df)

    def dmatrix(self, matrix: np.ndarray) -> xgb.DMatrix:
        """An encoded matrix as the booster's input (its feature names and categorical types)."""
        return encoding.matrix_dmatrix(self.spec, self.booster, matrix)

    def score(self, matrix: np.ndarray) -> np.ndarray:
        """Positive-class probabilities for an encoded matrix, the fast way (no DMatrix: the API's hot path).

        The matrix is the spec's encoding (its columns in the spec's order, as :meth:`encode` and the API's parser
        build it), so XGBoost's own feature check is skipped (it cost 0.11 of a single row's 0.27 ms, for the same
        scores); only the width is checked here. Scored by a :class:`DenseScorer` of this thread: on one OpenMP
        thread up to ``BLOCK_ROWS`` rows (more threads only add wake-ups to a small request), on ``BATCH_THREADS``
        beyond (XGBoost gives each thread blocks of 64 rows: a 100-row batch took 0.93 ms on one, 0.50 on two).
        """
        width = len(self.spec.data_schema.features)
        if matrix.ndim != 2 or matrix.shape[1] != width:
            raise ValueError(f"expected an encoded matrix of {width} columns, got shape {matrix.shape}")
        if len(matrix) == 0:
            return self.booster.inplace_predict(matrix, validate_features=False)
        local = self._scorers
        if getattr(local, "booster", None) is not self.booster:
            local.booster, local.single, local.batch = self.booster, DenseScorer(self.booster), None
        if len(matrix) <= BLOCK_ROWS:
            return local.single(matrix)
        if local.batch is None:  # a copy of its own, so the single-row booster keeps one thread
            wide = self.booster.copy()
            wide.set_param({"nthread": BATCH_THREADS})
            local.batch = DenseScorer(wide)
        return local.batch(matrix)

    def predict_records(self, records: list[dict[str, Any]]) -> np.ndarray:
        """Positive-class probabilities for rows given as dicts (the API's payload), encoded and scored as served."""
        return self.score(self.encode(records))

    def predict_frame(self, df: pd.DataFrame) -> np.ndarray:
        """Positive-class probabilities for the rows of a feature frame."""
        return encoding.score_frame(self.booster, df, self.spec)
