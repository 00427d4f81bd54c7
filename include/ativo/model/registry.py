"""The one writer of what serves: registers versions, records their gate verdicts, moves aliases, reads what serves.

MLflow is where people look, not the authority. Anyone who reaches MLflow can move an alias, edit a tag or delete
one, so nothing that decides what serves is read from there:

- :func:`register` makes a new version (lineage tags, sha256, reference profile, description) and writes a
  ``registered`` version record: its model file's sha256 and dataset version, signed with the platform key.
- :func:`record_gates` writes the gates' verdict on exactly that file (sha256, spec hash, decision-policy sha256) as
  a signed ``gated`` record.
- :func:`move` is the only way an alias changes. It checks the promotion authority (a passing ``gated`` record for
  the version's file under the spec as it is now), writes a **signed, chained promotion record** holding the model's
  whole routing after the move (alias → version, sha256, policy sha256, dataset version; the canary share), who
  asked, why and any approval, and only then mirrors the aliases and tags into MLflow for people to read.
- :func:`current` reads the newest promotion record whose signature verifies: what servers route, what lineage and
  erasure read. :func:`drift` compares it with MLflow and names every difference (registry tampering).
- :func:`tag_version` and :func:`describe_version` write what people read on a version (its gate verdict, approval,
  deploy state, reference profile, monitor report): every other module writes version tags and descriptions through
  them, and no other module creates a version or moves an alias (``tests/unit/test_registry_writes.py`` holds it).

The platform key (``ATIVO_PROMOTION_KEY``, else ``<home>/keys/promotion.key``, created 0600) is held by the
platform's processes and never by MLflow. Rotation: set the new key as ``ATIVO_PROMOTION_KEY`` and the old one in
``ATIVO_PROMOTION_KEYS_PREVIOUS``; records signed with either verify, new ones are signed with the new key; once
a promotion has been recorded under the new key, the old one can be dropped.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ativo.errors import AtivoError
from ativo.model.artifact import (
    POLICY_TAG,
    SHA256_TAG,
    DuplicateVersion,
    LoggedModel,
    policy_sha256_of,
    version_with_sha256,
)
from ativo.model.client import mlflow_client

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from ativo.config import Settings
    from ativo.spec import ModelSpec

log = logging.getLogger(__name__)

LIVE = ("champion", "canary", "shadow", "previous")
CHALLENGER = "challenger"
CANARY_PERCENT_TAG = "ativo.canary_percent"
DATASET_TAG = "ativo.dataset_version"
GENESIS = "0" * 64
TAG_VALUE_LIMIT = 5000
"""The most characters of a version tag's value the platform writes (a longer value is cut there)."""


@dataclass(frozen=True)
class DagRun:
    """The Airflow DAG run that made a move (a deploy DAG run): a promotion record names it, the page links to it."""

    dag_id: str
    run_id: str

    def to_dict(self) -> dict[str, str]:
        """``{"dag_id", "run_id"}`` (JSON-ready)."""
        return {"dag_id": self.dag_id, "run_id": self.run_id}


class PromotionRefused(AtivoError):
    """A move the promotion authority refuses: the version has no passing gate record for its file and spec."""

    def __init__(self, message: str, version: str, failed_gates: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.version, self.failed_gates = version, failed_gates


# ---------------------------------------------------------------------------------------------------------- keys


def _key_id(key: bytes) -> str:
    return hashlib.sha256(b"ativo.promotion-key-id\x00" + key).hexdigest()[:16]


def key_file(settings: Settings) -> Path:
    """Where the embedded default keeps the platform key (``ATIVO_PROMOTION_KEY`` wins over it)."""
    return settings.home / "keys" / "promotion.key"


def signing_key(settings: Settings) -> tuple[str, bytes]:
    """(key id, key) that signs new records: ``ATIVO_PROMOTION_KEY``, else the key file (created once, 0600)."""
    if settings.promotion_key is not None and settings.promotion_key.get_secret_value():
        key = settings.promotion_key.get_secret_value().encode()
        return _key_id(key), key
    path = key_file(settings)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_hex(32).encode())
        try:  # whole or not at all: a process reading at this moment never sees an empty key
            os.link(tmp, path)
        except FileExistsError:  # another process created it a moment ago: theirs is the key
            pass
        finally:
            tmp.unlink()
    key = path.read_bytes().strip()
    if len(key) < 32:
        raise AtivoError(
            f"the platform key {path} is empty or too short ({len(key)} bytes): restore it from backup "
            "(records signed with it verify only with it) or set ATIVO_PROMOTION_KEY"
        )
    return _key_id(key), key


def verification_keys(settings: Settings) -> dict[str, bytes]:
    """Key id → key of every key whose records verify: the signing key and the retired ones being rotated out."""
    kid, key = signing_key(settings)
    keys = {kid: key}
    if settings.promotion_keys_previous is not None:
        for old in settings.promotion_keys_previous.get_secret_value().split(","):
            if old.strip():
                keys[_key_id(old.strip().encode())] = old.strip().encode()
    return keys


def _normalised(doc: Any) -> Any:
    """``doc`` as it reads back from a JSON column, so that what is signed is exactly what is stored.

    String keys, lists, and no NaN or infinity (PostgreSQL's JSON refuses them; they become strings).
    """
    import math

    def walk(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return str(v)
        if isinstance(v, dict):
            return {str(k): walk(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [walk(x) for x in v]
        return v

    return json.loads(json.dumps(walk(doc), default=str))


def _canonical(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def _sign(key: bytes, doc: Any, prev: str = "") -> str:
    return hmac.new(key, _canonical({"doc": doc, "prev": prev}), hashlib.sha256).hexdigest()


def _valid(keys: dict[str, bytes], key_id: str, doc: Any, prev: str, signature: str) -> bool:
    key = keys.get(key_id)
    return key is not None and hmac.compare_digest(_sign(key, doc, prev), signature)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _engine(settings: Settings) -> Engine:
    from ativo.store.db import get_engine

    return get_engine(settings.db_url)


# ------------------------------------------------------------------------------------------------------ versions


def _write_version_record(settings: Settings, spec: ModelSpec, version: str, kind: str, doc: dict[str, Any]) -> None:
    from sqlalchemy import insert

    from ativo.store.db import version_records

    kid, key = signing_key(settings)
    row = {
        "spec": spec.name,
        "model": spec.registered_model_name,
        "version": str(version),
        "kind": kind,
        "doc": _normalised(doc),
        "key_id": kid,
        "at": _now(),
    }
    row["signature"] = _sign(key, {k: row[k] for k in ("spec", "model", "version", "kind", "doc")})
    with _engine(settings).begin() as conn:
        conn.execute(insert(version_records).values(**row))


def _version_docs(
    settings: Settings, spec: ModelSpec, kind: str, version: str | None = None, newest_first: bool = False
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(version, document) of every ``kind`` record of the spec's model whose signature verifies (others logged)."""
    from sqlalchemy import select

    from ativo.store.db import version_records as t

    keys = verification_keys(settings)
    q = select(t).where(t.c.model == spec.registered_model_name, t.c.kind == kind)
    if version is not None:
        q = q.where(t.c.version == str(version))
    q = q.order_by(t.c.id.desc() if newest_first else t.c.id)
    with _engine(settings).connect() as conn:
        rows = list(conn.execute(q).mappings())
    for row in rows:
        signed = {k: row[k] for k in ("spec", "model", "version", "kind", "doc")}
        if _valid(keys, row["key_id"], signed, "", row["signature"]):
            yield str(row["version"]), dict(row["doc"])
        else:
            log.error(
                "%s version %s: a %s record (id %s) fails its signature; ignored",
                spec.registered_model_name,
                row["version"],
                kind,
                row["id"],
            )


def version_record(
    settings: Settings, spec: ModelSpec, version: str | int, kind: str, where: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """The newest ``kind`` record (``registered`` / ``gated`` / ``approved``) of a version that verifies, or None.

    ``where``: fields the record's document must have (an approval's ``dag_run_id``).
    """
    docs = _version_docs(settings, spec, kind, str(version), newest_first=True)
    return next((doc for _, doc in docs if all(doc.get(k) == v for k, v in (where or {}).items())), None)


def recorded_dataset_versions(settings: Settings, spec: ModelSpec) -> dict[str, str]:
    """Version → the dataset version it was trained on, as the platform signed it at registration."""
    return {
        v: str(doc["dataset_version"])
        for v, doc in _version_docs(settings, spec, "registered")
        if doc.get("dataset_version")
    }


def register_version(logged: LoggedModel, name: str, tags: Mapping[str, str] | None = None) -> str:
    """Register a logged model as a new version of ``name`` (on the active tracking URI) with its sha256 tag.

    MLflow's version only: no signed ``registered`` record is written, so the version can never serve (the platform
    registers through :func:`register`). For tests and tools that need a version to read back.

    Raises:
        DuplicateVersion: a version with a byte-identical model file exists already.
    """
    import mlflow

    existing = version_with_sha256(name, logged.sha256, mlflow.get_tracking_uri())
    if existing is not None:
        raise DuplicateVersion(name, existing, logged.sha256)
    mv = mlflow.register_model(logged.uri, name, tags={SHA256_TAG: logged.sha256, **(tags or {})})
    return str(mv.version)


def register(
    spec: ModelSpec,
    settings: Settings,
    logged: LoggedModel,
    tags: dict[str, str],
    *,
    run_id: str | None,
    description: str,
    dataset_tag: str | None = None,
    profile: Callable[[str], None] | None = None,
) -> str:
    """Register a logged model as a new version of the spec's model; returns its number.

    Args:
        spec: the model spec.
        settings: where the registry and the platform DB are.
        logged: the logged ``model.ubj`` (its URI and sha256).
        tags: lineage tags (:func:`ativo.train.tracking.lineage_tags` and the caller's own).
        run_id: the MLflow run that logged it.
        description: what the version is, for people reading MLflow.
        dataset_tag: the dataset version it was trained on.
        profile: logs the new version's reference profile (:mod:`ativo.monitor.profile`), called with its number
            before any gate runs (training passes :func:`ativo.train.tracking.log_profile`).

    Raises:
        DuplicateVersion: a version with a byte-identical model file exists already (``.version`` names it).
    """
    from mlflow.exceptions import MlflowException

    client = mlflow_client(settings)
    name = spec.registered_model_name
    existing = version_with_sha256(name, logged.sha256, settings.mlflow_tracking_uri)
    if existing is not None:
        raise DuplicateVersion(name, existing, logged.sha256)
    try:
        client.create_registered_model(name)
    except MlflowException as err:
        if err.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise
    model_id = logged.uri.removeprefix("models:/") if logged.uri.startswith("models:/m-") else None
    all_tags = {k: str(v) for k, v in {**tags, SHA256_TAG: logged.sha256}.items()}
    mv = client.create_model_version(
        name, logged.uri, run_id=run_id, description=description, model_id=model_id, tags=all_tags
    )
    version = str(mv.version)
    _write_version_record(
        settings,
        spec,
        version,
        "registered",
        {
            "model_sha256": logged.sha256,
            "dataset_version": dataset_tag or tags.get(DATASET_TAG),
            "spec_hash": spec.content_hash(),
            "run_id": run_id,
        },
    )
    if profile is not None:
        profile(version)
    return version


def adopt(spec: ModelSpec, settings: Settings, version: str, logged: LoggedModel, dataset_tag: str | None) -> None:
    """Write the ``registered`` record a version an earlier try of this step registered lacks.

    The sha256 and dataset version are the caller's (what it logged and trained on), never MLflow's tags: a version
    someone made in MLflow to look like this step's gets the truth signed, and serving loads its file only if the
    bytes have that sha256.
    """
    if version_record(settings, spec, version, "registered") is not None:
        return
    mv = mlflow_client(settings).get_model_version(spec.registered_model_name, version)
    _write_version_record(
        settings,
        spec,
        version,
        "registered",
        {
            "model_sha256": logged.sha256,
            "dataset_version": dataset_tag,
            "spec_hash": spec.content_hash(),
            "run_id": mv.run_id,
        },
    )


def tag_version(spec: ModelSpec, settings: Settings, version: str | int, tags: Mapping[str, str]) -> None:
    """Set tags on a version of the spec's model in MLflow, in the order given — for people: nothing reads them back.

    Args:
        spec: the model spec (its registered model).
        settings: where the registry is.
        version: the version tagged.
        tags: tag name → value; a value longer than :data:`TAG_VALUE_LIMIT` characters is cut there.
    """
    client = mlflow_client(settings)
    for key, value in tags.items():
        client.set_model_version_tag(spec.registered_model_name, str(version), key, str(value)[:TAG_VALUE_LIMIT])


def describe_version(spec: ModelSpec, settings: Settings, version: str | int, edit: Callable[[str], str]) -> str:
    """Rewrite a version's description in MLflow from what it says now; returns the description it has after.

    Args:
        spec: the model spec (its registered model).
        settings: where the registry is.
        version: the version described.
        edit: the current description (empty when it has none) → the new one; written only when it differs.
    """
    client = mlflow_client(settings)
    name = spec.registered_model_name
    current = client.get_model_version(name, str(version)).description or ""
    new = edit(current)
    if new != current:
        client.update_model_version(name, str(version), description=new)
    return new


def record_approval(settings: Settings, spec: ModelSpec, version: str, approval: dict[str, Any]) -> None:
    """Sign a four-eyes approval of a version for one deploy run (``approval["dag_run_id"]``)."""
    _write_version_record(settings, spec, str(version), "approved", approval)


def record_gates(
    spec: ModelSpec, settings: Settings, version: str, report: dict[str, Any], policy: Any = None
) -> dict[str, Any]:
    """Sign the gates' verdict on a version's file (the promotion authority); returns the record's document.

    Args:
        spec: the model spec.
        settings: where the platform DB and key are.
        version: the version gated.
        report: the gate report (:func:`ativo.evaluate.suite.build_report`): ``model_sha256``, ``spec_hash``,
            ``passed``, ``failed_gates``, the gates' reasons, ``gate_report_uri`` and ``model_card_uri``.
        policy: the per-group decision policy the fairness gate approved (its sha256 is recorded).
    """
    registered = version_record(settings, spec, version, "registered") or {}
    doc: dict[str, Any] = {
        "model_sha256": report.get("model_sha256"),
        "spec_hash": report.get("spec_hash"),
        "gate_hash": report.get("gate_hash"),
        "passed": bool(report.get("passed")),
        "failed_gates": list(report.get("failed_gates") or []),
        "reasons": {
            g: str((report.get("gates") or {}).get(g, {}).get("reason", ""))[:500]
            for g in report.get("failed_gates") or []
        },
        "decision_policy_uri": report.get("decision_policy_uri") if policy else None,
        "decision_policy_sha256": policy_sha256_of(policy),
        "dataset_version": registered.get("dataset_version", report.get("dataset_version")),
        "gate_report_uri": report.get("gate_report_uri"),
        "model_card_uri": report.get("model_card_uri"),
        "decided_at": report.get("decided_at"),
    }
    if registered and registered.get("model_sha256") != doc["model_sha256"]:
        doc["passed"] = False
        doc["failed_gates"] = [*list(doc["failed_gates"]), "integrity"]
        reasons: dict[str, str] = doc["reasons"]
        reasons["integrity"] = (
            f"the gated file has sha256 {str(doc['model_sha256'])[:12]}…, the platform "
            f"registered {str(registered.get('model_sha256'))[:12]}…"
        )
    _write_version_record(settings, spec, str(version), "gated", doc)
    return doc


def authorize(spec: ModelSpec, settings: Settings, version: str) -> dict[str, Any]:
    """The passing gate record that lets ``version`` take a live alias, under the spec as it is now.

    Raises:
        PromotionRefused: no gate record (ungated), a rejection (its failed gates named), or a record under
            another :meth:`~ativo.spec.ModelSpec.gate_hash` (re-run the gates under the current spec).
    """
    name = spec.registered_model_name
    gated = version_record(settings, spec, version, "gated")
    if gated is None:
        raise PromotionRefused(
            f"version {version} of {name} has no gate record signed by the platform: it never "
            "passed the gates, and only a gated version may serve (train it through the train "
            "DAG, or re-gate it)",
            str(version),
        )
    if not gated["passed"]:
        failed = tuple(gated.get("failed_gates") or ())
        why = "; ".join(f"{g}: {gated.get('reasons', {}).get(g, '')}".rstrip(": ") for g in failed)
        raise PromotionRefused(
            f"version {version} of {name} was rejected by its gates ({', '.join(failed)}): "
            f"{why}. A rejected version never serves",
            str(version),
            failed,
        )
    if gated.get("gate_hash") != spec.gate_hash():
        raise PromotionRefused(
            f"version {version} of {name} passed its gates under another version of spec "
            f"{spec.name}'s data, model or gates (gate hash {str(gated.get('gate_hash'))[:12]}…, "
            f"now {spec.gate_hash()[:12]}…): its gates must run again under the spec as it is "
            "now",
            str(version),
        )
    return gated


# ------------------------------------------------------------------------------------------------------ routing


@dataclass(frozen=True)
class Routed:
    """One live version as the signed record names it."""

    version: str
    model_sha256: str
    decision_policy_uri: str | None = None
    decision_policy_sha256: str | None = None
    dataset_version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The record's JSON form."""
        return {
            "version": self.version,
            "model_sha256": self.model_sha256,
            "decision_policy_uri": self.decision_policy_uri,
            "decision_policy_sha256": self.decision_policy_sha256,
            "dataset_version": self.dataset_version,
        }


@dataclass(frozen=True)
class Authorized:
    """The routing the newest valid promotion record authorizes (empty when nothing was ever promoted)."""

    routes: dict[str, Routed] = field(default_factory=dict)
    canary_percent: float | None = None
    seq: int | None = None
    signature: str = GENESIS
    record: dict[str, Any] = field(default_factory=dict)
    invalid: tuple[str, ...] = ()  # records that failed their signature or chain (tampering with the platform DB)

    def aliases(self) -> dict[str, str]:
        """Alias → version."""
        return {a: r.version for a, r in self.routes.items()}


def _routes(doc: dict[str, Any]) -> dict[str, Routed]:
    return {a: Routed(**r) for a, r in (doc.get("routing") or {}).items()}


def current(spec: ModelSpec, settings: Settings) -> Authorized:
    """What serves: the newest promotion record of the spec's model whose signature and chain verify."""
    records = history(spec, settings)
    invalid = tuple(
        f"promotion record {r['seq']} ({r.get('action')}) fails its signature or chain"
        for r in records
        if not r["valid"]
    )
    if invalid:
        log.error("%s: %s", spec.registered_model_name, "; ".join(invalid))
    valid = [r for r in records if r["valid"]]
    if not valid:
        return Authorized(invalid=invalid)
    doc = {k: v for k, v in valid[-1].items() if k not in ("seq", "valid", "signature")}
    return Authorized(
        routes=_routes(doc),
        canary_percent=doc.get("canary_percent"),
        seq=valid[-1]["seq"],
        signature=valid[-1]["signature"],
        record=doc,
        invalid=invalid,
    )


def aliases(spec: ModelSpec, settings: Settings) -> dict[str, str]:
    """Alias → version of what serves (the signed record), plus ``challenger`` as MLflow shows it."""
    out = current(spec, settings).aliases()
    challenger = _mlflow_aliases(spec, settings).get(CHALLENGER)
    if challenger:
        out[CHALLENGER] = challenger
    return out


def history(spec: ModelSpec, settings: Settings) -> list[dict[str, Any]]:
    """Every promotion record of the spec's model, oldest first, each with ``valid`` (signature and chain).

    A record is valid when its signature verifies and it chains to the valid record before it; a forged or edited
    row is kept as evidence, outside the chain. ``dag_run`` is the Airflow run that made the move (None: made outside
    Airflow); it is not part of the signed document.
    """
    from sqlalchemy import select

    from ativo.store.db import promotion_records as t

    keys = verification_keys(settings)
    out = []
    prev = GENESIS
    with _engine(settings).connect() as conn:
        rows = list(conn.execute(select(t).where(t.c.model == spec.registered_model_name).order_by(t.c.seq)).mappings())
    for row in rows:
        doc = dict(row["doc"])
        ok = (
            doc.get("model") == row["model"]
            and row["prev_signature"] == prev
            and _valid(keys, row["key_id"], doc, row["prev_signature"], row["signature"])
        )
        if ok:
            prev = row["signature"]
        dag_run = DagRun(row["dag_id"], row["run_id"]).to_dict() if row["dag_id"] and row["run_id"] else None
        out.append({**doc, "seq": row["seq"], "valid": ok, "signature": row["signature"], "dag_run": dag_run})
    return out


def _mlflow_aliases(spec: ModelSpec, settings: Settings) -> dict[str, str]:
    from mlflow.exceptions import MlflowException

    try:
        rm = mlflow_client(settings).get_registered_model(spec.registered_model_name)
    except MlflowException:
        return {}
    return {str(k): str(v) for k, v in (rm.aliases or {}).items()}


def set_challenger(spec: ModelSpec, settings: Settings, version: str) -> None:
    """Point ``challenger`` at a version that just passed its gates (a pointer for people: it serves nothing)."""
    authorize(spec, settings, version)
    mlflow_client(settings).set_registered_model_alias(spec.registered_model_name, CHALLENGER, str(version))


def _routed(spec: ModelSpec, settings: Settings, action: str, alias: str, version: str, kept: Routed | None) -> Routed:
    if kept is not None and kept.version == version and (alias == "previous" or action == "rollback"):
        # An old champion stepping back (kept loaded for a rollback), or coming back by a rollback, keeps the record
        # it served under: an emergency rollback never waits for gates to run again.
        return kept
    gated = authorize(spec, settings, version)  # taking champion, canary or shadow: its gates, under this spec
    registered = version_record(settings, spec, version, "registered") or {}
    return Routed(
        version=str(version),
        model_sha256=str(gated["model_sha256"]),
        decision_policy_uri=gated.get("decision_policy_uri"),
        decision_policy_sha256=gated.get("decision_policy_sha256"),
        dataset_version=registered.get("dataset_version") or gated.get("dataset_version"),
    )


def move(
    spec: ModelSpec,
    settings: Settings,
    action: str,
    changes: dict[str, str | None],
    *,
    actor: str,
    reason: str,
    canary_percent: float | None = None,
    approval: dict[str, Any] | None = None,
    figures: dict[str, Any] | None = None,
    state_tags: dict[str, str] | None = None,
    expected: dict[str, str] | None = None,
    dag_run: DagRun | None = None,
) -> dict[str, Any]:
    """Change what serves: check the authority, sign the record, then mirror it into MLflow.

    Args:
        spec: the model spec.
        settings: where the platform DB, key and registry are.
        action: what the move is (``promote``, ``start_canary``, ``rollback``, ``erasure_switch``, …).
        changes: alias → the version it takes, or None to take the alias away.
        actor: the authenticated identity that asked (an Airflow user, an op key's name, ``erasure``).
        reason: why, in words.
        canary_percent: the canary's share of callers (None: the spec's).
        approval: the four-eyes approval, when the spec requires one.
        figures: the evidence the decision rested on.
        state_tags: version → its ``ativo.deploy_state`` tag in MLflow (for people).
        expected: the routing (alias → version) the caller based ``changes`` on; when what serves changed meanwhile
            (another move won the lock), the move is refused instead of undoing the other one.
        dag_run: the Airflow run making the move (the deploy DAG's), None outside Airflow (``actor`` says who).

    Returns:
        The signed record (with ``seq``, ``aliases_before``, ``aliases_after`` and ``dag_run``).

    Raises:
        PromotionRefused: a version taking an alias has no passing gate record for its file under this spec, a new
            version would go live without the approval four eyes require, or what serves changed meanwhile.
    """
    from sqlalchemy import insert

    from ativo.store.db import promotion_records as t
    from ativo.store.db import write_lock

    bad = [a for a in changes if a not in LIVE]
    if bad:
        raise ValueError(f"move: {bad} are not live aliases ({', '.join(LIVE)})")
    kid, key = signing_key(settings)
    name = spec.registered_model_name
    with _engine(settings).begin() as conn:
        write_lock(conn, f"ativo.promotion.{name}")
        before = current(spec, settings)
        if expected is not None and {a: v for a, v in expected.items() if a in LIVE} != before.aliases():
            raise PromotionRefused(
                f"what serves {name} changed while this move was prepared (it read "
                f"{ {a: v for a, v in expected.items() if a in LIVE} }, now {before.aliases()}): "
                "nothing was changed; try again",
                str(next(iter(changes.values()), "")),
            )
        routes = dict(before.routes)
        by_version = {r.version: r for r in before.routes.values()}
        newcomers = {v for a, v in changes.items() if v is not None and a != "previous" and v not in by_version}
        if (
            newcomers
            and spec.deploy.approval == "required"
            and approval is None
            and action not in ("erasure_switch", "rollback")
        ):
            raise PromotionRefused(
                f"{name} needs four eyes (deploy.approval: required): version(s) "
                f"{', '.join(sorted(newcomers))} may go live only through the deploy DAG, approved "
                "by another person than the one who asked",
                ",".join(sorted(newcomers)),
            )
        for alias, version in changes.items():
            if version is None:
                routes.pop(alias, None)
            else:
                routes[alias] = _routed(spec, settings, action, alias, str(version), by_version.get(str(version)))
        percent = (
            canary_percent
            if canary_percent is not None
            else (before.canary_percent if "canary" not in changes else None)
        )
        if "canary" not in routes:
            percent = None
        prev = before.signature  # chained to the newest valid record; invalid rows stay as evidence, outside the chain
        doc = {
            "spec": spec.name,
            "model": name,
            "action": action,
            "at": _now().isoformat(timespec="seconds"),
            "actor": actor,
            "reason": reason,
            "routing": {a: r.to_dict() for a, r in sorted(routes.items())},
            "canary_percent": percent,
            "approval": approval,
            "figures": figures or {},
            "aliases_before": before.aliases(),
        }
        doc = _normalised(doc)
        signature = _sign(key, doc, prev)
        inserted = conn.execute(
            insert(t).values(
                spec=spec.name,
                model=name,
                doc=doc,
                prev_signature=prev,
                key_id=kid,
                signature=signature,
                at=_now(),
                dag_id=dag_run.dag_id if dag_run else None,
                run_id=dag_run.run_id if dag_run else None,
            )
        )
        seq = inserted.inserted_primary_key[0]  # type: ignore[index]
    _mirror(spec, settings, routes, percent, state_tags or {})
    log.info("%s: %s by %s — %s (record %s)", name, action, actor, {a: r.version for a, r in routes.items()}, seq)
    return {
        **doc,
        "seq": seq,
        "version": next((v for v in changes.values() if v), None),
        "aliases_after": {a: r.version for a, r in routes.items()},
        "dag_run": dag_run.to_dict() if dag_run else None,
    }


def adopt_routing(spec: ModelSpec, settings: Settings, *, actor: str, reason: str) -> dict[str, Any]:
    """Sign what serves now in MLflow as the first promotion record of a platform upgraded from before the records.

    Only while the model has no promotion record at all (afterwards, every move goes through :func:`move`). Each
    live version's file is read and must have the sha256 its version recorded; its policy, when it has one, is
    signed with its own sha256. The operator who runs it vouches for that routing (the record names them and why).

    Raises:
        PromotionRefused: the model has promotion records already, or a live file does not match its sha256.
    """
    from sqlalchemy import insert, select

    from ativo.model.artifact import load_with_policy, read_artifact_json
    from ativo.store.db import promotion_records as t
    from ativo.store.db import write_lock

    name = spec.registered_model_name
    shown = _mlflow_aliases(spec, settings)
    routes: dict[str, Routed] = {}
    for alias in LIVE:
        if alias not in shown:
            continue
        try:
            model = load_with_policy(spec, settings.mlflow_tracking_uri, shown[alias])  # sha256 checked
        except Exception as err:
            raise PromotionRefused(
                f"{name} version {shown[alias]} ({alias}) cannot be adopted: {err}", shown[alias]
            ) from err
        uri = model.tags.get(POLICY_TAG)
        policy = read_artifact_json(settings.mlflow_tracking_uri, uri) if uri and uri != "None" else None
        routes[alias] = Routed(
            version=model.version,
            model_sha256=model.sha256,
            decision_policy_uri=uri if policy else None,
            decision_policy_sha256=policy_sha256_of(policy),
            dataset_version=model.tags.get(DATASET_TAG),
        )
    percent: float | None = None
    if "canary" in routes:  # the share MLflow's tag set, when it is a number; else the spec's
        tag = mlflow_client(settings).get_registered_model(name).tags.get(CANARY_PERCENT_TAG)
        try:
            percent = min(100.0, max(0.0, float(tag))) if tag else None
        except ValueError:
            percent = None
    kid, key = signing_key(settings)
    with _engine(settings).begin() as conn:
        write_lock(conn, f"ativo.promotion.{name}")
        if conn.execute(select(t.c.seq).where(t.c.model == name).limit(1)).first() is not None:
            raise PromotionRefused(
                f"{name} has signed promotion records already: what serves changes only through "
                "them (ativo promote / rollback, the deploy DAG)",
                "",
            )
        doc = _normalised(
            {
                "spec": spec.name,
                "model": name,
                "action": "adopt",
                "at": _now().isoformat(timespec="seconds"),
                "actor": actor,
                "reason": reason,
                "routing": {a: r.to_dict() for a, r in sorted(routes.items())},
                "canary_percent": percent,
                "approval": None,
                "figures": {},
                "aliases_before": {},
            }
        )
        signature = _sign(key, doc, GENESIS)
        conn.execute(
            insert(t).values(
                spec=spec.name, model=name, doc=doc, prev_signature=GENESIS, key_id=kid, signature=signature, at=_now()
            )
        )
    log.warning(
        "%s: %s adopted MLflow's routing %s as the first signed promotion record",
        name,
        actor,
        {a: r.version for a, r in routes.items()},
    )
    return {**doc, "aliases_after": {a: r.version for a, r in routes.items()}, "version": None}


def _mirror(
    spec: ModelSpec, settings: Settings, routes: dict[str, Routed], percent: float | None, state_tags: dict[str, str]
) -> None:
    """Make MLflow show what the record says (aliases, the canary tag, each version's state) — for people only."""
    from mlflow.exceptions import MlflowException

    client = mlflow_client(settings)
    name = spec.registered_model_name
    shown = _mlflow_aliases(spec, settings)
    for alias in LIVE:
        want = routes.get(alias)
        if want is None and alias in shown:
            try:
                client.delete_registered_model_alias(name, alias)
            except MlflowException:
                pass
        elif want is not None and shown.get(alias) != want.version:
            client.set_registered_model_alias(name, alias, want.version)
    try:
        if percent is None:
            client.delete_registered_model_tag(name, CANARY_PERCENT_TAG)
        else:
            client.set_registered_model_tag(name, CANARY_PERCENT_TAG, str(float(percent)))
    except MlflowException:
        pass
    for version, value in state_tags.items():
        tag_version(spec, settings, version, {"ativo.deploy_state": value})


def drift(spec: ModelSpec, settings: Settings, authorized: Authorized) -> list[str]:
    """Every way MLflow differs from the signed routing: aliases, the canary share, a live version's tags.

    An empty list when they agree. Each entry says what MLflow shows and what the record authorizes.
    """
    from mlflow.exceptions import MlflowException

    client = mlflow_client(settings)
    name = spec.registered_model_name
    try:
        rm = client.get_registered_model(name)
    except MlflowException as err:
        if authorized.routes:
            return [f"the registered model {name} cannot be read ({err.error_code})"]
        return []
    shown = {str(k): str(v) for k, v in (rm.aliases or {}).items()}
    out = []
    for alias in LIVE:
        want = authorized.routes.get(alias)
        if shown.get(alias) != (want.version if want else None):
            out.append(
                f"alias {alias} is {shown.get(alias) or 'absent'} in MLflow, the signed record says "
                f"{want.version if want else 'absent'}"
            )
    tag = (rm.tags or {}).get(CANARY_PERCENT_TAG)
    if "canary" in authorized.routes and authorized.canary_percent is not None:
        try:
            same = tag is not None and abs(float(tag) - authorized.canary_percent) < 1e-9
        except ValueError:
            same = False
        if not same:
            out.append(
                f"{CANARY_PERCENT_TAG} is {tag!r} in MLflow, the signed record says {authorized.canary_percent:g}"
            )
    elif tag is not None and "canary" not in authorized.routes:
        out.append(f"{CANARY_PERCENT_TAG} is {tag!r} in MLflow with no canary authorized")
    for alias, r in sorted(authorized.routes.items()):
        try:
            tags = dict(client.get_model_version(name, r.version).tags or {})
        except MlflowException as err:
            out.append(f"version {r.version} ({alias}) cannot be read ({err.error_code})")
            continue
        expected: tuple[tuple[str, str | None], ...] = (
            (SHA256_TAG, r.model_sha256),
            (POLICY_TAG, r.decision_policy_uri),
            (DATASET_TAG, r.dataset_version),
        )
        for key, signed in expected:
            have = tags.get(key)
            if (have or None) != (signed or None) and not (key == POLICY_TAG and have == "None" and not signed):
                out.append(
                    f"version {r.version} ({alias}): tag {key} is {have!r} in MLflow, the signed record says {signed!r}"
                )
    return out
