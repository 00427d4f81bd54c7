"""A loaded model version and how to score rows with it (the gates and the inference API share it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ativo.model import encoding
from ativo.spec import ModelSpec

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import xgboost as xgb

    from ativo.model.policy import DecisionPolicy


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
        """Positive-class probabilities for an encoded matrix, the fast way (no DMatrix: the API's hot path)."""
        return self.booster.inplace_predict(matrix)

    def predict_matrix(self, matrix: np.ndarray) -> np.ndarray:
        """Positive-class probabilities for an encoded matrix."""
        return self.booster.predict(self.dmatrix(matrix))

    def predict_records(self, records: list[dict[str, Any]]) -> np.ndarray:
        """Positive-class probabilities for rows given as dicts (the API's payload)."""
        return self.predict_matrix(self.encode(records))

    def predict_frame(self, df: pd.DataFrame) -> np.ndarray:
        """Positive-class probabilities for the rows of a feature frame."""
        return encoding.score_frame(self.booster, df, self.spec)
