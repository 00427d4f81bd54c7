"""Find every place a subject is, and have each store forget it.

This module decides which stores, in which order and with which targets; each store's owner removes the subjects
in its own format, atomically (the new bytes are complete before they replace the old) and idempotently:

1. the lake (:func:`ativo.data.lake.forget`: partitions rewritten by the ETL's writer, then re-indexed), which
   names the subjects' record ids;
2. a new dataset version of the purged lake (:meth:`~ativo.data.versioning.DatasetRegistry.commit`);
3. every historical dataset version (:meth:`~ativo.data.versioning.DatasetRegistry.forget`: a redacted copy of each
   DVC object holding the subjects, named by the redaction map once it is stored), and this host's caches of those
   versions (:func:`ativo.data.training.forget_cached`);
4. the prediction log, whose decisions name the prediction ids, then the label log
   (:mod:`ativo.serve.predlog`), and the regression cases (:func:`ativo.evaluate.regression.forget_subjects`);
5. the landing area and quarantine (:func:`ativo.data.landing.forget`, :func:`ativo.data.quarantine.forget`) and
   the local text files (:func:`ativo.store.redaction.forget_in_text_files`), searched for every id found so far;
6. the old DVC objects (:meth:`~ativo.data.versioning.DatasetRegistry.drop_redacted`), only once the map names their
   replacements.

So a killed worker that runs it again ends where an uninterrupted run ends.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ativo.store.redaction import Needles, pattern

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from ativo.config import Settings
    from ativo.data.versioning import DatasetRegistry, DatasetVersion
    from ativo.spec import ModelSpec
    from ativo.store.objects import ObjectStore


@dataclass
class Targets:
    """What one batch erases: subject ids, their keyed pseudonyms, and the record ids found for them."""

    subjects: list[str]
    pseudonyms: list[str]
    record_ids: set[str] = field(default_factory=set)
    prediction_ids: set[str] = field(default_factory=set)
    found: set[str] = field(default_factory=set)  # the subjects some store held

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (the batch's working state; emptied when it closes)."""
        return {
            "subjects": self.subjects,
            "pseudonyms": self.pseudonyms,
            "record_ids": sorted(self.record_ids),
            "prediction_ids": sorted(self.prediction_ids),
            "found": sorted(self.found),
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Targets:
        """Inverse of :meth:`to_dict`."""
        return cls(
            list(doc["subjects"]),
            list(doc["pseudonyms"]),
            set(doc["record_ids"]),
            set(doc["prediction_ids"]),
            set(doc["found"]),
        )

    def needles(self) -> list[str]:
        """Every string that must not be found anywhere afterwards."""
        return sorted(set(self.subjects) | set(self.pseudonyms) | self.record_ids)

    def subject_of(self, pseudonyms: set[str]) -> set[str]:
        """The subjects whose pseudonyms are among ``pseudonyms``."""
        by_pseudonym = dict(zip(self.pseudonyms, self.subjects, strict=True))
        return {by_pseudonym[p] for p in pseudonyms if p in by_pseudonym}


# --- find ---------------------------------------------------------------------------------------------------------


def find(spec: ModelSpec, settings: Settings, targets: Targets) -> dict[str, Any]:
    """Everything the purge will need to know, read before anything is changed (so a resumed purge knows it too).

    Adds to ``targets`` the record ids (lake and every historical object) and prediction ids (the prediction log)
    of the subjects. Returns counts: lake partitions, affected DVC objects and dataset versions, logged predictions.
    """
    from ativo.data import lake
    from ativo.data.versioning import open_registry, versions_of
    from ativo.serve.predlog import held_predictions
    from ativo.store.db import get_engine
    from ativo.store.objects import open_store

    store, engine = open_store(settings), get_engine(settings.db_url)
    schema = spec.data_schema
    latest = versions_of(engine, spec.name)
    in_lake = lake.held(store, engine, spec, targets.subjects)
    targets.found |= in_lake.found
    targets.record_ids |= in_lake.ids
    objects = open_registry(settings).holding(engine, spec.name, schema.subject, schema.record_id, targets.subjects)
    targets.found |= objects.found
    targets.record_ids |= objects.ids
    logged = held_predictions(store, spec.name, targets.pseudonyms)
    targets.prediction_ids |= logged.ids
    targets.found |= targets.subject_of(logged.found)
    return {
        "dataset_before": latest[-1].tag if latest else None,
        "lake_partitions": len(in_lake.places),
        "dvc_objects": len(objects.objects),
        "dataset_versions": objects.versions,
        "predictions": logged.rows,
        "records": len(targets.record_ids),
        "subjects_found": len(targets.found),
    }


# --- purge --------------------------------------------------------------------------------------------------------


def _now(_name: str, fn: Callable[[], Any]) -> Any:
    return fn()


def purge(
    spec: ModelSpec,
    settings: Settings,
    targets: Targets,
    *,
    batch_id: int,
    found: dict[str, Any],
    checkpoint: Callable[[str, Callable[[], Any]], Any] = _now,
) -> dict[str, Any]:
    """Have every store forget ``targets``, in the order of this module's docstring; the purge step's result.

    Args:
        spec: the model spec.
        settings: where the stores are.
        targets: the batch's targets as :func:`find` completed them; the ids found on the way are added.
        batch_id: the erasure batch (the redaction map's entries carry it).
        found: :func:`find`'s counts (the latest dataset version and those it saw holding the subjects: a resumed
            run no longer sees what it changed).
        checkpoint: runs each store's part (by name) once and returns what it returned, also when the purge is run
            again after a killed worker (the batch's checkpoints); the receipt then counts what the first try did.

    Returns:
        Counts and places, never an id: what the receipts' ``purged`` and ``dataset_versions`` say.
    """
    from ativo.data.versioning import open_registry, versions_of
    from ativo.errors import DatasetVersionError
    from ativo.evaluate.regression import forget_subjects
    from ativo.store.db import get_engine
    from ativo.store.objects import open_store

    engine, store, registry = get_engine(settings.db_url), open_store(settings), open_registry(settings)
    versions = versions_of(engine, spec.name)
    before = found.get("dataset_before", versions[-1].tag if versions else None)  # a batch found by an older release

    def commit() -> str | None:
        if not versions:
            return None
        try:
            return registry.commit(spec.name, store, engine).tag
        except DatasetVersionError as err:
            if "has no partitions to version" not in str(err):
                raise  # git or DVC failed: the step fails and is retried
            return f"none: {err}"  # every row was erased: no version can hold nothing

    def logs() -> dict[str, int]:
        out = purge_logs(spec, store, targets)
        out["regression_cases"] = forget_subjects(engine, spec.name, targets.pseudonyms)  # their incident cases
        return out

    lake = checkpoint("lake", lambda: purge_lake(spec, settings, targets))
    after = checkpoint("commit", commit)
    redacted = checkpoint("versions", lambda: redact_versions(spec, registry, engine, targets, batch_id))
    affected = sorted(set(found.get("dataset_versions", [])) | set(redacted["versions"]))
    caches = checkpoint(
        "caches", lambda: drop_dataset_caches(settings, spec, [v for v in versions if v.tag in affected])
    )
    logged = checkpoint("logs", logs)
    rx = pattern(targets.needles())
    files = checkpoint("landing", lambda: purge_landing_and_quarantine(spec, store, engine, rx) if rx else {})
    text = checkpoint("text", lambda: purge_text_files(settings, rx) if rx else {})
    deleted = checkpoint("drop", lambda: delete_redacted(spec, registry, engine, batch_id))
    return {
        "found": {k: v for k, v in found.items() if k not in ("at", "dataset_before")},
        "lake_partitions": lake,
        "lake_rows": sum(lake.values()),
        "dataset_before": before,
        "dataset_after": after,
        "redacted_versions": affected,
        "redacted_objects": {
            old: {k: o[k] for k in ("new", "rows_removed", "relpath")} for old, o in redacted["objects"].items()
        },
        "dvc_objects_deleted": deleted,
        "landing_quarantine": files,
        "prediction_log": logged,
        "dataset_caches": caches,
        "text_files": text,
        "subjects_found": len(targets.found),
        "subjects": len(targets.subjects),
    }


def purge_again(spec: ModelSpec, settings: Settings, targets: Targets) -> None:
    """Forget once more what may have arrived since the purge: a server's late flush, a task's log line.

    The logs and regression cases, landing, quarantine and the text files (the verification scan found a hit).
    """
    from ativo.evaluate.regression import forget_subjects
    from ativo.store.db import get_engine
    from ativo.store.objects import open_store

    store, engine = open_store(settings), get_engine(settings.db_url)
    purge_logs(spec, store, targets)
    forget_subjects(engine, spec.name, targets.pseudonyms)
    rx = pattern(targets.needles())
    if rx:
        purge_landing_and_quarantine(spec, store, engine, rx)
        purge_text_files(settings, rx)


def purge_lake(spec: ModelSpec, settings: Settings, targets: Targets) -> dict[str, int]:
    """The lake forgets the subjects (:func:`ativo.data.lake.forget`); partition → rows removed.

    The record ids of their rows are added to ``targets``.
    """
    from ativo.data import lake

    forgotten = lake.forget(spec, settings, targets.subjects)
    targets.record_ids |= forgotten.ids
    targets.found |= forgotten.found
    return forgotten.places


def redact_versions(
    spec: ModelSpec, registry: DatasetRegistry, engine: Engine, targets: Targets, batch_id: int
) -> dict[str, Any]:
    """Every historical dataset version forgets the subjects (:meth:`DatasetRegistry.forget`).

    Returns:
        ``{"objects": {old md5: {"new", "rows_removed", "versions", "relpath"}}, "versions": [tags]}``: every object
        the batch redacted, those a killed try redacted before this call included (from the redaction map; their
        versions and path are then unknown here: :func:`find` counted their versions).
    """
    from ativo.data.versioning import redactions_of

    schema = spec.data_schema
    redacted = registry.forget(engine, spec.name, schema.subject, schema.record_id, targets.subjects, batch_id)
    targets.record_ids |= redacted.ids
    targets.found |= redacted.found
    objects: dict[str, dict[str, Any]] = {
        r.old_md5: {"new": r.new_md5, "rows_removed": r.rows_removed, "versions": [], "relpath": None}
        for r in redactions_of(engine, spec.name, batch_id)
    }
    for old, o in redacted.objects.items():
        objects[old] = {"new": o.new, "rows_removed": o.rows_removed, "versions": o.versions, "relpath": o.relpath}
    return {"objects": objects, "versions": redacted.versions}


def delete_redacted(spec: ModelSpec, registry: DatasetRegistry, engine: Engine, batch_id: int) -> list[str]:
    """Delete, from the DVC cache and remote, every old object this batch redacted (those still there)."""
    return registry.drop_redacted(engine, spec.name, batch_id)


def drop_dataset_caches(settings: Settings, spec: ModelSpec, versions: list[DatasetVersion]) -> list[str]:
    """Delete this host's read caches of the given dataset versions (they hold the rows as they were)."""
    from ativo.data.training import forget_cached

    return forget_cached(settings, spec.name, versions)


def purge_logs(spec: ModelSpec, store: ObjectStore, targets: Targets) -> dict[str, int]:
    """The prediction log forgets the subjects' decisions, then the label log their labels; object key → rows.

    A client-chosen id that quotes a subject or record id (an older server's request id or feedback id) is
    redacted and its row kept (:func:`ativo.serve.predlog.forget_predictions`). The prediction ids of the decisions
    removed are added to ``targets``.
    """
    from ativo.serve.predlog import forget_labels, forget_predictions

    quotes = {*targets.subjects, *targets.record_ids}
    decisions = forget_predictions(store, spec.name, targets.pseudonyms, quotes)
    targets.prediction_ids |= decisions.ids
    labels = forget_labels(store, spec.name, targets.prediction_ids, quotes)
    return {**decisions.places, **labels.places}


def purge_landing_and_quarantine(
    spec: ModelSpec, store: ObjectStore, engine: Engine, needles: Needles
) -> dict[str, int]:
    """Landing and quarantined batches lose the subjects' lines; quarantine reports and reasons are redacted.

    Returns:
        object key (or ``db:quarantined_batches/<id>``) → lines removed or values redacted.
    """
    from ativo.data import landing, quarantine

    return {**landing.forget(store, spec, needles).places, **quarantine.forget(store, engine, spec, needles).places}


def airflow_log_folder(settings: Settings) -> Path:
    """Where Airflow writes task logs in this deployment: ``[logging] base_log_folder``, else ``$AIRFLOW_HOME/logs``.

    Embedded: ``var/airflow/logs`` (its AIRFLOW_HOME); docker-compose and Helm: ``/opt/airflow/logs`` (the image's
    AIRFLOW_HOME, the shared ``airflow-logs`` volume / ``ativo-logs`` PVC that every task and the API server mount),
    which is not under ``ATIVO_HOME``. Read from the environment that Airflow itself reads.
    """
    folder = os.environ.get("AIRFLOW__LOGGING__BASE_LOG_FOLDER")
    if folder:
        return Path(folder)
    home = os.environ.get("AIRFLOW_HOME")
    return Path(home) / "logs" if home else settings.airflow_home / "logs"


def text_roots(settings: Settings) -> list[Path]:
    """Local directories whose text files may quote values: task logs, the alert sink, the platform's own logs."""
    roots = [
        airflow_log_folder(settings),
        settings.airflow_home / "logs",
        settings.home / "logs",
        settings.home / "alerts",
    ]
    return [p for i, p in enumerate(roots) if p.exists() and p not in roots[:i]]


def purge_text_files(settings: Settings, needles: Needles) -> dict[str, int]:
    """Replace every long needle with ``[erased]`` in the text files of :func:`text_roots`; path → values redacted."""
    from ativo.store.redaction import forget_in_text_files

    return forget_in_text_files(text_roots(settings), needles).places
