"""MLflow: the training run (params, metrics, dataset input, lineage tags, native model) and its registration."""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from ativo.config import PROJECT_ROOT, Settings
from ativo.data.features import LABEL
from ativo.data.versioning import DatasetVersion
from ativo.spec import ModelSpec
from ativo.train.trainer import Split, TrainedModel, design_matrix

log = logging.getLogger(__name__)


def code_version(root: Path = PROJECT_ROOT) -> dict[str, str]:
    """The commit of the code that trains (``ATIVO_GIT_COMMIT`` wins), and whether the tree was dirty."""
    if os.environ.get("ATIVO_GIT_COMMIT"):
        return {"commit": os.environ["ATIVO_GIT_COMMIT"], "dirty": "unknown"}
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return {"commit": "unknown", "dirty": "unknown"}
    return {"commit": commit, "dirty": "true" if status else "false"}


def lineage_tags(
    spec: ModelSpec, version: DatasetVersion, run_meta: dict[str, Any], model_sha256: str
) -> dict[str, str]:
    """Tags that let anyone walk back from a model to its data, code, spec and Airflow run."""
    code = code_version()
    tags = {
        "ativo.spec": spec.name,
        "ativo.spec_hash": spec.content_hash(),
        "ativo.dataset": version.spec,
        "ativo.dataset_version": version.tag,
        "ativo.dataset_rev": version.git_rev,
        "ativo.dataset_manifest": version.manifest_hash,
        "ativo.dataset_rows": str(version.rows),
        "ativo.git_commit": code["commit"],
        "ativo.git_dirty": code["dirty"],
        "ativo.model_format": "xgboost-ubj",
        "ativo.model_sha256": model_sha256,
    }
    for key in ("dag_id", "dag_run_id", "task_id", "try_number"):
        if run_meta.get(key) is not None:
            tags[f"ativo.airflow.{key}"] = str(run_meta[key])
    return tags


def ensure_experiment(client: Any, spec: ModelSpec, settings: Settings) -> str:
    """The spec's experiment id; artifacts go to the object store (``<store>/mlflow/<spec>``)."""
    name = f"ativo/{spec.name}"
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return str(exp.experiment_id)
    try:
        return str(client.create_experiment(name, artifact_location=f"{settings.store_uri}/mlflow/{spec.name}"))
    except Exception:  # created concurrently by another run
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return str(exp.experiment_id)


def log_and_register(
    spec: ModelSpec,
    settings: Settings,
    version: DatasetVersion,
    split: Split,
    model: TrainedModel,
    run_meta: dict[str, Any],
) -> dict[str, Any]:
    """Log the run to MLflow and register the model version with its lineage tags.

    Returns:
        ``{"run_id", "model_name", "model_version", "model_uri", "metrics", "tags"}``.
    """
    import mlflow
    import mlflow.xgboost
    from mlflow import MlflowClient
    from mlflow.data.pandas_dataset import from_pandas
    from mlflow.models import infer_signature

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    client = MlflowClient(settings.mlflow_tracking_uri)
    experiment_id = ensure_experiment(client, spec, settings)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.ubj"
        model.booster.save_model(path)
        model_sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    tags = lineage_tags(spec, version, run_meta, model_sha256)
    run_name = f"{spec.name}@{version.tag}"
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags) as run:
        mlflow.log_params({k: v for k, v in model.params.items() if k != "eval_metric"})
        mlflow.log_params({"num_boost_round": spec.model.num_boost_round, "split_seed": spec.split.seed,
                           "test_fraction": spec.split.test_fraction, "train_rows": len(split.train)})  # fmt: skip
        mlflow.log_metrics(model.metrics)
        dataset = from_pandas(
            split.train, source=f"{settings.store_uri}/lake/{spec.name}", targets=LABEL,
            name=f"{spec.name}@{version.tag}", digest=version.manifest_hash.removesuffix(".dir")[:32],
        )  # fmt: skip
        mlflow.log_input(dataset, context="training", tags={"ativo.dataset_version": version.tag})
        sample = design_matrix(split.valid.head(200), spec)
        import xgboost as xgb

        signature = infer_signature(sample, model.booster.predict(xgb.DMatrix(sample, enable_categorical=True)))
        info = mlflow.xgboost.log_model(model.booster, name="model", signature=signature, model_format="ubj")
        run_id = run.info.run_id
    mv = mlflow.register_model(info.model_uri, spec.registered_model_name, tags=tags)
    client.update_model_version(
        spec.registered_model_name, mv.version,
        description=f"Trained on {version.tag} ({version.rows} rows) at commit {tags['ativo.git_commit'][:12]}",
    )  # fmt: skip
    client.set_model_version_tag(spec.registered_model_name, mv.version, "ativo.mlflow_run_id", run_id)
    log.info("registered %s version %s from run %s", spec.registered_model_name, mv.version, run_id)
    return {
        "run_id": run_id,
        "model_name": spec.registered_model_name,
        "model_version": str(mv.version),
        "model_uri": f"models:/{spec.registered_model_name}/{mv.version}",
        "metrics": model.metrics,
        "tags": tags,
    }


def train_and_register(
    spec: ModelSpec, settings: Settings, dataset_tag: str | None, run_meta: dict[str, Any]
) -> dict[str, Any]:
    """The training step: pin the dataset version, split, fit, log, register.

    Args:
        spec: the model spec.
        settings: where things are.
        dataset_tag: the dataset version to train on; None means the latest.
        run_meta: Airflow context for lineage (dag_id, dag_run_id, task_id, try_number).
    """
    from ativo.data.versioning import open_registry
    from ativo.store.db import get_engine
    from ativo.train.trainer import fit, split_frame

    registry = open_registry(settings)
    version = registry.resolve(get_engine(settings.db_url), spec.name, dataset_tag)
    df = registry.read(version)
    split = split_frame(df, spec)
    model = fit(spec, split, device=spec.compute.device if spec.compute.device == "cpu" else "cuda")
    result = log_and_register(spec, settings, version, split, model, run_meta)
    result["dataset_version"] = version.tag
    return result
