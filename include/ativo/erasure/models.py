"""The models an erasure touches: found through lineage, live ones retrained and switched, the others retired.

A live version (champion, canary, challenger, shadow, previous) trained on an affected dataset version is trained
again with its recorded parameters (no new search) on the redacted counterpart of its own dataset version, goes
through the same gates, and replaces the old one by a direct blue/green switch: the old model may not stay live, so
there is no canary window. Every affected version that is no longer live loses its model artifacts and is tagged
with the requests; its lineage metadata (tags, parameters, metrics) stays.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import TYPE_CHECKING, Any

from ativo.errors import AtivoError
from ativo.model.client import mlflow_client

if TYPE_CHECKING:
    from ativo.config import Settings
    from ativo.spec import ModelSpec

log = logging.getLogger(__name__)

LIVE = ("champion", "canary", "challenger", "shadow", "previous")
REDACTED_TAG = "ativo.dataset_redacted"
REQUESTS_TAG = "ativo.erasure_requests"
RETRAINED_FROM_TAG = "ativo.erasure_retrained_from"
RETIRED_TAG = "ativo.erasure_retired"


class RetrainFailed(AtivoError):
    """An erasure retraining that did not give a version fit to serve (the request stays open with the reason)."""


def affected_versions(spec: ModelSpec, settings: Settings, dataset_tags: list[str]) -> list[dict[str, Any]]:
    """Every registered version trained on one of ``dataset_tags``: version, dataset tag, aliases (live roles).

    The live roles and dataset versions are the platform's signed records (MLflow's aliases and tags only where the
    platform recorded nothing); a version that serves but is gone from MLflow is still affected (its retraining then
    fails and the request stays open, saying so), never silently skipped.
    """
    from mlflow.exceptions import MlflowException

    from ativo.model.registry import aliases, current, recorded_dataset_versions

    client = mlflow_client(settings)
    name = spec.registered_model_name
    routed = current(spec, settings).routes
    try:
        client.get_registered_model(name)
        versions = list(client.search_model_versions(f"name = '{name}'"))
    except MlflowException as err:
        if err.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise  # the registry is down or refuses: the step fails and is retried, it never reads as "no model"
        versions = []  # nothing in MLflow: only what the records route (a deleted model may still be live)
    by_version: dict[str, list[str]] = {}
    for alias, v in aliases(spec, settings).items():
        by_version.setdefault(str(v), []).append(str(alias))
    signed = recorded_dataset_versions(settings, spec)  # what the platform signed; MLflow's tag can be rewritten
    wanted = set(dataset_tags)
    out = []
    for mv in versions:
        tags = mv.tags or {}
        tag = signed.get(str(mv.version))
        tag = tag if tag in wanted else tags.get("ativo.dataset_version")  # either naming it makes it affected
        if tag in wanted:
            out.append(
                {
                    "version": str(mv.version),
                    "dataset_version": tag,
                    "run_id": mv.run_id,
                    "aliases": sorted(set(by_version.get(str(mv.version), []))),
                    "retired": RETIRED_TAG in tags,
                }
            )
    seen = {r["version"] for r in out}
    for r in {r.version: r for r in routed.values()}.values():
        if r.version not in seen and r.dataset_version in wanted:  # live, but its version is gone from MLflow
            out.append(
                {
                    "version": r.version,
                    "dataset_version": r.dataset_version,
                    "run_id": None,
                    "aliases": sorted(set(by_version.get(r.version, []))),
                    "retired": False,
                }
            )
    return sorted(out, key=lambda r: int(r["version"]))


def redacted_name(tag: str, digest: str) -> str:
    """The name of a dataset version's redacted counterpart: ``<tag>~r<digest of its objects>``."""
    return f"{tag}~r{digest[:12]}"


def redacted_digest(settings: Settings, spec: ModelSpec, tag: str) -> str:
    """A digest of what a dataset version reads as now (its objects through the redaction map)."""
    from ativo.data.versioning import open_registry
    from ativo.store.db import get_engine

    registry = open_registry(settings)
    version = registry.resolve(get_engine(settings.db_url), spec.name, tag)
    listing = [(rel, md5) for rel, md5, _ in registry.resolved(version)]
    return hashlib.sha256(json.dumps(listing).encode()).hexdigest()


def recorded_params(spec: ModelSpec, settings: Settings, version: str) -> dict[str, Any]:
    """The hyperparameters a version was trained with (its trial's), typed by the spec's search space."""
    client = mlflow_client(settings)
    mv = client.get_model_version(spec.registered_model_name, version)
    if not mv.run_id:
        raise RetrainFailed(f"version {version} names no MLflow run: the parameters it was trained with are unknown")
    run = client.get_run(mv.run_id)
    params = dict(run.data.params)
    out: dict[str, Any] = {}
    for key, space in spec.model.search.space.items():
        if key not in params:
            continue
        raw = params[key]
        if space.type == "int":
            out[key] = int(float(raw))
        elif space.type == "float":
            out[key] = float(raw)
        else:
            out[key] = next((c for c in space.choices or () if str(c) == raw), raw)
    return out


def retrain(
    spec: ModelSpec,
    settings: Settings,
    version: str,
    *,
    batch_id: int,
    requests: list[str],
    run_meta: dict[str, Any],
    threads: int | None = None,
) -> dict[str, Any]:
    """Train ``version`` again with its recorded parameters on its dataset version as it reads now (redacted).

    Returns:
        ``{"from", "version", "dataset_version", "redacted", "params", "metrics"}`` of the new registered version.

    Raises:
        RetrainFailed: the redacted data cannot train a model (too few rows).
    """
    import mlflow

    from ativo.data.training import training_data
    from ativo.model.artifact import SHA256_TAG, DuplicateVersion, log_booster
    from ativo.model.encoding import design_matrix
    from ativo.model.registry import adopt, register
    from ativo.train.engine import fit_on
    from ativo.train.tracking import ensure_experiment, lineage_tags, log_profile

    client = mlflow_client(settings)
    name = spec.registered_model_name
    old = client.get_model_version(name, version)
    tag = (old.tags or {}).get("ativo.dataset_version")
    if not tag:
        raise RetrainFailed(f"version {version} names no dataset version: it cannot be retrained")
    params = recorded_params(spec, settings, version)
    try:  # too few rows left to split or to fit: a ValueError from either, which names the rows
        data = training_data(spec, settings, tag)  # on a dask spec's cluster, the redacted partitions read lazily
        model = fit_on(data, spec, settings, params, threads=threads)
    except ValueError as err:
        raise RetrainFailed(f"version {version} cannot be retrained on redacted {tag}: {err}") from err
    dataset, rows = data.version, data.rows
    signature_rows = data.signature_rows()
    digest = redacted_digest(settings, spec, tag)
    redacted = redacted_name(tag, digest)
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    experiment = ensure_experiment(client, spec, settings)
    extra = {
        "ativo.role": "erasure-retrain",
        REDACTED_TAG: redacted,
        REQUESTS_TAG: requests_note(batch_id, requests),
        "ativo.erasure_batch": str(batch_id),
        "ativo.erasure_request_count": str(len(requests)),
        RETRAINED_FROM_TAG: version,
        "ativo.trigger": "erasure",
    }
    with mlflow.start_run(experiment_id=experiment, run_name=f"{spec.name}@{redacted} erasure retrain of v{version}"):
        mlflow.log_params({**{k: str(v) for k, v in params.items()}, "retrained_from": version})
        mlflow.log_metrics(model.metrics)
        logged = log_booster(model.booster, signature_sample=design_matrix(signature_rows, spec))
        tags = lineage_tags(spec, dataset, run_meta, logged.sha256, settings)
        tags.update(extra)
        tags["ativo.dataset_rows"] = str(rows)
        run_id = mlflow.active_run().info.run_id  # type: ignore[union-attr]
        mlflow.set_tags(
            {
                **{k: v for k, v in tags.items() if not k.startswith("ativo.airflow.")},
                "ativo.model_uri": logged.uri,
                SHA256_TAG: logged.sha256,
                "ativo.mlflow_run_id": run_id,
            }
        )
    tags["ativo.mlflow_run_id"] = run_id
    description = (
        f"Erasure retraining of version {version} with its recorded parameters on {redacted} ({rows} "
        f"rows), for erasure batch {batch_id} ({len(requests)} request(s))"
    )
    try:
        new = register(
            spec,
            settings,
            logged,
            tags,
            run_id=run_id,
            description=description,
            dataset_tag=tag,
            profile=lambda v: log_profile(spec, settings, client, run_id, v, tag),
        )
    except DuplicateVersion as dup:  # an earlier try of this step registered it: finish what it began
        mine = client.get_model_version(name, dup.version).tags.get("ativo.erasure_batch")
        if mine != str(batch_id):
            raise RetrainFailed(
                f"retraining version {version} gave the same model as version {dup.version}, "
                "which is not from this erasure"
            ) from dup
        new = dup.version
        adopt(spec, settings, new, logged, tag)
        log_profile(spec, settings, client, run_id, new, tag)
    log.info("erasure batch %s: version %s retrained as version %s on %s", batch_id, version, new, redacted)
    return {
        "from": version,
        "version": new,
        "dataset_version": tag,
        "redacted": redacted,
        "params": params,
        "metrics": {k: round(float(v), 6) for k, v in model.metrics.items()},
    }


def switch(
    spec: ModelSpec, settings: Settings, replaced: dict[str, str], *, batch_id: int, requests: list[str]
) -> dict[str, Any]:
    """Move every live alias from an old version to its retrained one at once (blue/green, no canary window).

    An alias whose old version has no passing replacement stays where it is (the caller keeps the request open
    with the reason). Returns the deployment record.
    """
    from ativo.deploy.promotion import move_aliases
    from ativo.model.registry import aliases, set_challenger

    before = aliases(spec, settings)
    changes: dict[str, str | None] = {
        a: replaced[v] for a, v in before.items() if a in LIVE and a != "challenger" and v in replaced
    }
    reason = f"erasure batch {batch_id} ({len(requests)} request(s)): " + ", ".join(
        f"{a} {before[a]} → {changes[a]}" for a in sorted(changes)
    )
    rec = move_aliases(
        spec,
        settings,
        "erasure_switch",
        changes.get("champion") or before.get("champion"),
        changes,
        reason=reason,
        actor="erasure",
        figures={"replaced": replaced, "batch": batch_id},
        expected=before,
        states={v: f"{a} since {_now()} (erasure batch {batch_id})" for a, v in changes.items() if v},
    )
    if before.get("challenger") in replaced:
        set_challenger(spec, settings, replaced[before["challenger"]])
    return rec


def _now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def requests_note(batch_id: int, requests: list[str]) -> str:
    """How a tag names the requests of a batch (the batch lists them all: ``ativo erasure status``)."""
    shown = ", ".join(requests[:20]) + (f", … ({len(requests) - 20} more)" if len(requests) > 20 else "")
    return f"erasure batch {batch_id}: {len(requests)} request(s): {shown}"


def _logged_models(client: Any, experiment: str) -> dict[str, list[Any]]:
    """Source run id → the MLflow logged models (MLflow 3 keeps each under ``models/m-…``, not in the run)."""
    out: dict[str, list[Any]] = {}
    token = None
    while True:
        page = client.search_logged_models([experiment], max_results=1000, page_token=token)
        for m in page:
            out.setdefault(str(m.source_run_id), []).append(m)
        token = page.token
        if not token:
            return out


def retire(
    spec: ModelSpec,
    settings: Settings,
    versions: list[str],
    *,
    requests: list[str],
    dataset_tags: list[str],
    batch_id: int,
) -> dict[str, Any]:
    """Delete the model artifacts of every run trained on an affected dataset version, except live versions'.

    That is each affected registered version's model and every trial of the searches on that data (each trial
    logged a model), and the monitor reports of the windows they served; tags, parameters and metrics stay, and
    each run, logged model and version is tagged with the requests. Versions this batch retrained are kept (their
    data is redacted); a version an earlier erasure retrained is retired like any other.

    Returns:
        ``{"versions": [...], "runs": {run_id: [what was deleted]}}``.
    """
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    from ativo.model.registry import aliases, tag_version
    from ativo.train.tracking import ensure_experiment

    client = mlflow_client(settings)
    name = spec.registered_model_name
    live = {v for alias, v in aliases(spec, settings).items() if alias in LIVE}
    keep_runs = {client.get_model_version(name, v).run_id for v in live}
    experiment = ensure_experiment(client, spec, settings)
    models = _logged_models(client, experiment)
    note = requests_note(batch_id, requests)
    runs: dict[str, list[str]] = {}
    for t in dataset_tags:
        for run in client.search_runs([experiment], f"tags.`ativo.dataset_version` = '{t}'", max_results=5000):
            tags = run.data.tags
            if run.info.run_id in keep_runs or (
                tags.get("ativo.role") == "erasure-retrain" and tags.get("ativo.erasure_batch") == str(batch_id)
            ):
                continue
            deleted = []
            for m in models.get(run.info.run_id, []):
                repo = get_artifact_repository(m.artifact_location)
                if client.list_logged_model_artifacts(m.model_id):
                    repo.delete_artifacts()
                    deleted.append(f"logged model {m.model_id}")
                client.set_logged_model_tags(m.model_id, {RETIRED_TAG: note})
            repo = get_artifact_repository(run.info.artifact_uri)
            for entry in client.list_artifacts(run.info.run_id):
                if entry.path in ("model", "monitor"):  # a model logged inside the run; reports of windows it served
                    repo.delete_artifacts(entry.path)
                    deleted.append(entry.path)
            if deleted:
                runs[run.info.run_id] = deleted
                client.set_tag(run.info.run_id, RETIRED_TAG, note)
    retired = []
    for v in versions:
        if v in live:
            continue
        tag_version(
            spec,
            settings,
            v,
            {
                RETIRED_TAG: note,
                "ativo.erasure_batch": str(batch_id),
                "ativo.deploy_state": f"retired by erasure {_now()}",
            },
        )
        retired.append(v)
    return {"versions": retired, "runs": runs}


def run_gates(spec: ModelSpec, settings: Settings, version: str) -> dict[str, Any]:
    """Every gate on a retrained version, in this process; the published report (``challenger`` is not set).

    The champion gate compares it with the version it replaces (a retrained ``previous`` must be as good as the old
    ``previous``, not as the champion).
    """
    from ativo.evaluate.suite import GATES, publish, run_suite

    replaces = (
        mlflow_client(settings).get_model_version(spec.registered_model_name, version).tags.get(RETRAINED_FROM_TAG)
    )
    results = run_suite(spec, settings, version, GATES, baseline=replaces)
    report = publish(spec, settings, version, results, GATES, alias=None)
    return {
        k: report[k] for k in ("version", "passed", "verdict", "failed_gates", "model_card_uri", "gate_report_uri")
    } | {"reasons": {g: report["gates"][g]["reason"] for g in report["failed_gates"]}}
