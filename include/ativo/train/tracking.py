"""MLflow helpers shared by training: the code version, lineage tags, the spec's experiment, the reference profile.

The runs themselves (a parent search run, a child run per trial, the registered best model) are logged by
:mod:`ativo.train.search`; an erasure's retraining logs its own (:mod:`ativo.erasure.models`).
"""

from __future__ import annotations

import json
import logging
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from ativo.config import PROJECT_ROOT, Settings, load_settings
from ativo.data.versioning import DatasetVersion
from ativo.spec import ModelSpec
from ativo.store import prefixes

log = logging.getLogger(__name__)


def code_version(root: Path = PROJECT_ROOT, *, settings: Settings | None = None) -> dict[str, str]:
    """The commit of the code that trains, and whether the tree was dirty.

    ``settings.git_commit`` (``ATIVO_GIT_COMMIT``; the current environment's settings when none are given) wins
    over asking git, for images built without a ``.git``.
    """
    commit_override = (settings or load_settings()).git_commit
    if commit_override:
        return {"commit": commit_override, "dirty": "unknown"}
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return {"commit": "unknown", "dirty": "unknown"}
    return {"commit": commit, "dirty": "true" if status else "false"}


def lineage_tags(
    spec: ModelSpec,
    version: DatasetVersion,
    run_meta: dict[str, Any],
    model_sha256: str,
    settings: Settings | None = None,
) -> dict[str, str]:
    """Tags that let anyone walk back from a model to its data, code, spec and Airflow run."""
    code = code_version(settings=settings)
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
    artifacts = prefixes.uri(settings.store_uri, prefixes.mlflow_artifacts(spec.name))
    try:
        return str(client.create_experiment(name, artifact_location=artifacts))
    except Exception:  # created concurrently by another run
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return str(exp.experiment_id)


def log_profile(spec: ModelSpec, settings: Settings, client: Any, run_id: str, version: str, tag: str) -> None:
    """Log the version's reference profile (:mod:`ativo.monitor.profile`) on its run and link it from the version.

    It is logged before any gate runs, so the privacy gate's artifact scan reads it too (``ativo.profile_uri``).
    Registration calls it (:func:`ativo.model.registry.register`'s ``profile``), for a search's best trial and for
    an erasure's retraining alike.
    """
    from ativo.data.features import LABEL
    from ativo.data.training import load_split
    from ativo.model.artifact import load_version
    from ativo.model.registry import tag_version
    from ativo.monitor.profile import PROFILE_ARTIFACT, PROFILE_TAG, build_profile

    model = load_version(spec, settings.mlflow_tracking_uri, version)
    _, split, _ = load_split(spec, settings, tag)
    scores = model.predict_frame(split.test)
    profile = build_profile(spec, version, tag, split.train, split.test, scores, split.test[LABEL].to_numpy())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(PROFILE_ARTIFACT).name
        path.write_text(json.dumps(profile.to_dict(), allow_nan=False, indent=1))
        client.log_artifact(run_id, str(path), artifact_path=str(Path(PROFILE_ARTIFACT).parent))
    tag_version(spec, settings, version, {PROFILE_TAG: f"runs:/{run_id}/{PROFILE_ARTIFACT}"})
