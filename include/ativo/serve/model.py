"""A registered model version as serving loads it: the native XGBoost file, checked against its sha256.

Never unpickles: only ``model.ubj`` is read, its sha256 must equal the version's ``ativo.model_sha256`` tag, and an
artifact that carries a pickle is refused. The infra gate loads through this very path, so a model that passes it
is one serving can load.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ativo.errors import AtivoError
from ativo.spec import ModelSpec

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import xgboost as xgb

MODEL_FILE = "model.ubj"
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".cloudpickle", ".dill")


class ModelIntegrityError(AtivoError):
    """The artifact is not the one the registry recorded, or not in a format serving accepts."""


class _Lineage:
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
class ServedModel(_Lineage):
    """A loaded model version and how to score rows with it."""

    spec: ModelSpec
    name: str
    version: str
    booster: xgb.Booster
    sha256: str
    tags: dict[str, str] = field(default_factory=dict)
    files: tuple[str, ...] = ()
    policy: Any = None  # a DecisionPolicy when the fairness gate's mitigation approved per-group thresholds

    def encode(self, records: list[dict[str, Any]]) -> np.ndarray:
        """Rows (feature name → value) as the float matrix the booster reads (categories as their codes).

        An unknown category or a missing value becomes NaN, which XGBoost treats as missing; validating input is
        the API's job, this is the hot path.
        """
        import numpy as np

        features = self.spec.data_schema.features
        codes = _category_codes(self.spec)
        out = np.full((len(records), len(features)), np.nan, dtype=np.float32)
        for i, row in enumerate(records):
            for j, f in enumerate(features):
                value = row.get(f.name)
                if value is None:
                    continue
                out[i, j] = codes[f.name].get(value, np.nan) if f.type == "category" else float(value)
        return out

    def encode_frame(self, df: pd.DataFrame) -> np.ndarray:
        """A feature frame as the same encoded matrix as :meth:`encode` (categories as codes, missing as NaN)."""
        import numpy as np

        from ativo.train.trainer import design_matrix

        dm = design_matrix(df, self.spec)
        cols = []
        for f in self.spec.data_schema.features:
            if f.type == "category":
                codes = dm[f.name].cat.codes.to_numpy().astype("float32")
                codes[codes < 0] = np.nan
                cols.append(codes)
            else:
                cols.append(dm[f.name].to_numpy(dtype="float32"))
        return np.column_stack(cols)

    def dmatrix(self, matrix: np.ndarray) -> xgb.DMatrix:
        """An encoded matrix as the booster's input (its feature names and categorical types)."""
        import xgboost as xgb

        return xgb.DMatrix(matrix, feature_names=self.spec.data_schema.feature_names,
                           feature_types=self.booster.feature_types, enable_categorical=True)  # fmt: skip

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
        from ativo.train.trainer import score

        return score(self.booster, df, self.spec)


_CODES: dict[str, dict[str, dict[str, int]]] = {}


def _category_codes(spec: ModelSpec) -> dict[str, dict[str, int]]:
    key = spec.content_hash()
    if key not in _CODES:
        _CODES[key] = {
            f.name: {c: i for i, c in enumerate(f.categories or ())}
            for f in spec.data_schema.features
            if f.type == "category"
        }
    return _CODES[key]


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def load_booster(directory: Path, expected_sha256: str | None, where: str) -> tuple[Any, str, tuple[str, ...]]:
    """Read ``model.ubj`` from a downloaded artifact directory, refusing pickles and checking the sha256.

    Returns:
        (booster, sha256, the artifact's file names).

    Raises:
        ModelIntegrityError: no native model file, a pickle among the files, or a checksum mismatch.
    """
    import xgboost as xgb

    files = tuple(sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file()))
    pickles = [f for f in files if f.lower().endswith(PICKLE_SUFFIXES)]
    if pickles:
        raise ModelIntegrityError(f"{where}: the artifact carries pickled files ({', '.join(pickles)}); serving "
                                  "loads only the native XGBoost format and never unpickles")  # fmt: skip
    found = sorted(directory.rglob(MODEL_FILE))
    if not found:
        raise ModelIntegrityError(f"{where}: no {MODEL_FILE} in the artifact (files: {', '.join(files) or 'none'})")
    data = found[0].read_bytes()
    sha = sha256_bytes(data)
    if not expected_sha256:
        raise ModelIntegrityError(f"{where}: the registry recorded no sha256 (tag ativo.model_sha256); refusing to "
                                  "serve an artifact nobody can verify")  # fmt: skip
    if sha != expected_sha256:
        raise ModelIntegrityError(
            f"{where}: {MODEL_FILE} has sha256 {sha[:16]}…, the registry recorded {expected_sha256[:16]}…: "
            "the artifact was changed or corrupted after training"
        )
    booster = xgb.Booster()
    try:
        booster.load_model(bytearray(data))
    except xgb.core.XGBoostError as err:
        raise ModelIntegrityError(f"{where}: {MODEL_FILE} does not load as an XGBoost model: {err}") from err
    # A serving worker scores one request on one thread: spreading a row over OpenMP threads only adds wake-ups,
    # and on a busy host it turns into tens of milliseconds of tail latency (measured: p99 65 ms vs 33 ms).
    booster.set_param({"nthread": 1})
    return booster, sha, files


@dataclass(frozen=True)
class RegisteredVersion(_Lineage):
    """What the registry records of a model version, without its artifact."""

    name: str
    version: str
    source: str
    tags: dict[str, str]

    @property
    def sha256(self) -> str | None:
        """The sha256 of its ``model.ubj``, as recorded at training."""
        return self.tags.get("ativo.model_sha256")


def registered_version(spec: ModelSpec, tracking_uri: str, version: str | int | None = None, *,
                       alias: str | None = None) -> RegisteredVersion:  # fmt: skip
    """The registry's record of a version of the spec's model (by number or alias)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    name = spec.registered_model_name
    mv = client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, str(version))
    return RegisteredVersion(name=name, version=str(mv.version), source=str(mv.source), tags=dict(mv.tags))


def load_version(spec: ModelSpec, tracking_uri: str, version: str | int | None = None, *,
                 alias: str | None = None) -> ServedModel:  # fmt: skip
    """Load a registered version of the spec's model (by number or alias) the way serving does.

    Raises:
        ModelIntegrityError: see :func:`load_booster`.
    """
    from mlflow.artifacts import download_artifacts

    rv = registered_version(spec, tracking_uri, version, alias=alias)
    where = f"model {rv.name} version {rv.version}"
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(download_artifacts(artifact_uri=rv.source, dst_path=tmp, tracking_uri=tracking_uri))
        booster, sha, files = load_booster(local, rv.sha256, where)
    return ServedModel(spec=spec, name=rv.name, version=rv.version, booster=booster, sha256=sha, tags=rv.tags,
                       files=files)  # fmt: skip
