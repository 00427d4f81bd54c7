"""A version's native file: written once by training, read back (sha256 checked, never unpickled) by everyone.

Writing: :func:`log_booster` logs the booster's native ``model.ubj`` to the active MLflow run and returns its
sha256, which the registry (:mod:`ativo.model.registry`, the one writer of versions) records as the version's tag
``ativo.model_sha256``. Reading: :func:`load_version` downloads the artifact, refuses pickles, checks the sha256
against the tag and loads the booster; the infra gate loads through this very path, so a model that passes it is one
serving can load.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ativo.errors import AtivoError
from ativo.model.served import Lineage, ServedModel
from ativo.spec import ModelSpec

if TYPE_CHECKING:
    import pandas as pd
    import xgboost as xgb

MODEL_FILE = "model.ubj"
SHA256_TAG = "ativo.model_sha256"
POLICY_TAG = "ativo.decision_policy_uri"
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".cloudpickle", ".dill")


class ModelIntegrityError(AtivoError):
    """The artifact is not the one the registry recorded, or not in a format serving accepts."""


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def policy_sha256_of(policy: Any) -> str | None:
    """The sha256 a decision policy is recorded and checked under (of its canonical JSON); None for no policy."""
    import json

    if not policy:
        return None
    canonical = json.dumps(policy, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def native_bytes(booster: xgb.Booster) -> bytes:
    """The booster in XGBoost's native UBJ format: the bytes of ``model.ubj``."""
    return bytes(booster.save_raw("ubj"))


@dataclass(frozen=True)
class LoggedModel:
    """A model logged to an MLflow run: where it is and the sha256 of its ``model.ubj``."""

    uri: str
    sha256: str


def log_booster(booster: xgb.Booster, *, signature_sample: pd.DataFrame | None = None) -> LoggedModel:
    """Log the booster's native ``model.ubj`` to the active MLflow run (with a signature from a sample frame).

    Args:
        booster: the trained booster.
        signature_sample: a design-matrix frame (:func:`ativo.model.encoding.design_matrix`) whose columns and
            scores become the model's MLflow signature; none without it.
    """
    import mlflow.xgboost
    import xgboost as xgb
    from mlflow.models import infer_signature

    signature = None
    if signature_sample is not None:
        scores = booster.predict(xgb.DMatrix(signature_sample, enable_categorical=True))
        signature = infer_signature(signature_sample, scores)
    # Requirements pinned here: inferring them imports the model in a subprocess, seconds per trial.
    info = mlflow.xgboost.log_model(
        booster,
        name="model",
        signature=signature,
        model_format="ubj",
        pip_requirements=[f"xgboost=={xgb.__version__}"],
    )
    return LoggedModel(uri=str(info.model_uri), sha256=sha256_bytes(native_bytes(booster)))


class DuplicateVersion(AtivoError):
    """The model file is byte-identical to a registered version's (the same sha256): it is not registered again."""

    def __init__(self, name: str, version: str, sha256: str) -> None:
        super().__init__(
            f"the model is byte-identical to version {version} of {name} (sha256 {sha256[:12]}…): not registered again"
        )
        self.name, self.version, self.sha256 = name, version, sha256


def version_with_sha256(name: str, sha256: str, tracking_uri: str | None = None) -> str | None:
    """The registered version of ``name`` whose model file has this sha256, if any."""
    from mlflow.exceptions import MlflowException

    from ativo.model.client import mlflow_client

    client = mlflow_client(tracking_uri)
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return None
    same = [mv.version for mv in versions if (mv.tags or {}).get(SHA256_TAG) == sha256]
    return str(min(same, key=int)) if same else None


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
        raise ModelIntegrityError(
            f"{where}: the artifact carries pickled files ({', '.join(pickles)}); serving "
            "loads only the native XGBoost format and never unpickles"
        )
    found = sorted(directory.rglob(MODEL_FILE))
    if not found:
        raise ModelIntegrityError(f"{where}: no {MODEL_FILE} in the artifact (files: {', '.join(files) or 'none'})")
    data = found[0].read_bytes()
    sha = sha256_bytes(data)
    if not expected_sha256:
        raise ModelIntegrityError(
            f"{where}: the registry recorded no sha256 (tag {SHA256_TAG}); refusing to "
            "serve an artifact nobody can verify"
        )
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
class RegisteredVersion(Lineage):
    """What the registry records of a model version, without its artifact."""

    name: str
    version: str
    source: str
    tags: dict[str, str]

    @property
    def sha256(self) -> str | None:
        """The sha256 of its ``model.ubj``, as recorded at training."""
        return self.tags.get(SHA256_TAG)


def registered_version(
    spec: ModelSpec, tracking_uri: str, version: str | int | None = None, *, alias: str | None = None
) -> RegisteredVersion:
    """The registry's record of a version of the spec's model (by number or alias)."""
    from ativo.model.client import mlflow_client

    client = mlflow_client(tracking_uri)
    name = spec.registered_model_name
    mv = client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, str(version))
    return RegisteredVersion(name=name, version=str(mv.version), source=str(mv.source), tags=dict(mv.tags))


def read_artifact_json(tracking_uri: str, uri: str) -> Any:
    """A JSON artifact (``runs:/…/x.json``) of the MLflow server or store at ``tracking_uri``, parsed."""
    import json

    from mlflow.artifacts import download_artifacts

    with tempfile.TemporaryDirectory() as tmp:
        path = download_artifacts(artifact_uri=uri, dst_path=tmp, tracking_uri=tracking_uri)
        return json.loads(Path(path).read_text())


def artifact_location(tracking_uri: str, source: str) -> str:
    """Where a version's files are: a ``models:/m-…`` source resolved through ``tracking_uri`` itself.

    MLflow resolves such a source through its process-wide default store, which is not the platform's in a process
    started without ``MLFLOW_TRACKING_URI`` (``ativo serve`` from a shell): the version would not be found.
    """
    if not source.startswith("models:/m-"):
        return source
    from ativo.model.client import mlflow_client

    return str(mlflow_client(tracking_uri).get_logged_model(source.removeprefix("models:/")).artifact_location)


def load_version(
    spec: ModelSpec,
    tracking_uri: str,
    version: str | int | None = None,
    *,
    alias: str | None = None,
    expected_sha256: str | None = None,
) -> ServedModel:
    """Load a registered version of the spec's model (by number or alias) the way serving does.

    ``expected_sha256`` is the sha256 the platform signed (serving passes its promotion record's); without it, the
    registry's tag is the reference (enough to catch corruption, not tampering).

    Raises:
        ModelIntegrityError: see :func:`load_booster`.
    """
    from mlflow.artifacts import download_artifacts

    rv = registered_version(spec, tracking_uri, version, alias=alias)
    where = f"model {rv.name} version {rv.version}"
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(
            download_artifacts(
                artifact_uri=artifact_location(tracking_uri, rv.source), dst_path=tmp, tracking_uri=tracking_uri
            )
        )
        booster, sha, files = load_booster(local, expected_sha256 or rv.sha256, where)
    return ServedModel(
        spec=spec, name=rv.name, version=rv.version, booster=booster, sha256=sha, tags=rv.tags, files=files
    )


def load_with_policy(
    spec: ModelSpec,
    tracking_uri: str,
    version: str,
    *,
    expected_sha256: str | None = None,
    policy_uri: str | None = None,
    policy_sha256: str | None = None,
) -> ServedModel:
    """:func:`load_version`, plus the version's per-group decision policy when its gates logged one.

    With ``expected_sha256`` (a signed record's), the policy is the record's too (``policy_uri``, whose canonical
    JSON must have ``policy_sha256``), never the registry's tag. A version whose policy cannot be read or does not
    match does not load: the gate approved its mitigated decisions, not raw ones.
    """
    from ativo.model.policy import DecisionPolicy

    model = load_version(spec, tracking_uri, version, expected_sha256=expected_sha256)
    if expected_sha256 and policy_sha256 and not policy_uri:
        raise ModelIntegrityError(
            f"model {model.name} version {model.version}: its gates approved a decision policy "
            "(sha256 recorded) but the record names no file for it: it does not serve raw "
            "decisions instead"
        )
    uri = policy_uri if expected_sha256 else model.tags.get(POLICY_TAG)
    if uri and uri != "None":
        doc = read_artifact_json(tracking_uri, uri)
        if expected_sha256:
            sha = str(policy_sha256_of(doc))
            if sha != policy_sha256:
                raise ModelIntegrityError(
                    f"model {model.name} version {model.version}: its decision policy at {uri} "
                    f"has sha256 {sha[:16]}…, the gates approved {str(policy_sha256)[:16]}…: "
                    "the policy was changed after the gates"
                )
        model.policy = DecisionPolicy(spec, doc)
    return model
