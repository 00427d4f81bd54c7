"""Deployment moves: ``champion``, ``canary``, ``shadow``, ``previous``, each through the registry's signed records.

Servers route what the newest signed promotion record says (:mod:`ativo.model.registry`, :mod:`ativo.serve.live`),
so every move here is a deployment: a canary starts when ``canary`` is set, a promotion moves ``champion`` and keeps
the old one as ``previous`` (still loaded, so a rollback is instant), a rollback moves them back. Only a version
with a passing gate record for its file under the current spec may take an alias (:class:`DeployRefused`
otherwise). Each move is also written for people, with who, why and the figures it rested on, as a JSON object in
``deployments/<spec>/`` of the object store and as tags on the versions concerned.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import TYPE_CHECKING, Any

from ativo.errors import AtivoError
from ativo.model.client import mlflow_client
from ativo.model.registry import DagRun, aliases, tag_version
from ativo.spec import ModelSpec
from ativo.store import prefixes

if TYPE_CHECKING:
    from ativo.config import Settings


class DeployError(AtivoError):
    """A deployment move that cannot be made (nothing to roll back, no such version, …)."""


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def record(
    spec: ModelSpec,
    settings: Settings,
    action: str,
    version: str | None,
    reason: str,
    actor: str,
    before: dict[str, str],
    after: dict[str, str],
    figures: dict[str, Any] | None = None,
    dag_run: DagRun | None = None,
) -> dict[str, Any]:
    """Write one deployment record (``deployments/<spec>/<time>-<action>-<id>.json``) and return it.

    ``dag_run`` is the Airflow run that made the move (the deploy DAG's); None outside Airflow, where ``actor`` says
    who.
    """
    from ativo.store.objects import open_store

    rec = {
        "spec": spec.name,
        "model": spec.registered_model_name,
        "action": action,
        "version": version,
        "reason": reason,
        "actor": actor,
        "at": _now(),
        "aliases_before": before,
        "aliases_after": after,
        "figures": figures or {},
        "dag_run": dag_run.to_dict() if dag_run else None,
    }
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%f")  # keys sort in the order the moves happened
    key = prefixes.deployment_record(spec.name, stamp, action, uuid.uuid4().hex[:8])
    rec["uri"] = open_store(settings).put_bytes(key, json.dumps(rec, indent=2, default=str).encode())
    return rec


def history(spec: ModelSpec, settings: Settings) -> list[dict[str, Any]]:
    """Every deployment record of the spec, oldest first."""
    from ativo.store.objects import open_store

    store = open_store(settings)
    return [json.loads(store.get_bytes(k)) for k in store.list(prefixes.deployments(spec.name)) if k.endswith(".json")]


def _check_version(client: Any, spec: ModelSpec, version: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_model_version(spec.registered_model_name, str(version))
    except MlflowException:
        raise DeployError(f"model {spec.registered_model_name} has no version {version!r}") from None


def move_aliases(
    spec: ModelSpec,
    settings: Settings,
    action: str,
    version: str | None,
    changes: dict[str, str | None],
    *,
    reason: str,
    actor: str,
    figures: dict[str, Any] | None = None,
    canary_percent: float | None = None,
    approval: dict[str, Any] | None = None,
    states: dict[str, str] | None = None,
    expected: dict[str, str] | None = None,
    dag_run: DagRun | None = None,
) -> dict[str, Any]:
    """One move through the registry's signed records (:func:`ativo.model.registry.move`), then its copy for people.

    Raises:
        DeployRefused: the promotion authority refused a version (its failed gates named).
    """
    from ativo.model.registry import PromotionRefused, move

    before = aliases(spec, settings) if expected is None else expected
    try:
        move(
            spec,
            settings,
            action,
            changes,
            actor=actor,
            reason=reason,
            canary_percent=canary_percent,
            approval=approval,
            figures=figures,
            state_tags=states,
            expected=before,
            dag_run=dag_run,
        )
    except PromotionRefused as err:
        raise DeployRefused(str(err), err.version, err.failed_gates) from err
    return record(
        spec,
        settings,
        action,
        version,
        reason,
        actor,
        before,
        aliases(spec, settings),
        {**(figures or {}), **({"approval": approval} if approval else {})},
        dag_run,
    )


class DeployRefused(DeployError):
    """The promotion authority refused: the version has no passing gate record for its file under this spec."""

    def __init__(self, message: str, version: str, failed_gates: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.version, self.failed_gates = version, failed_gates


def start_trial(
    spec: ModelSpec,
    settings: Settings,
    version: str,
    *,
    shadow: bool = False,
    percent: float | None = None,
    reason: str = "",
    actor: str = "deploy",
    approval: dict[str, Any] | None = None,
    dag_run: DagRun | None = None,
) -> dict[str, Any]:
    """Put ``version`` on live traffic as the canary (``percent`` % of callers) or as the shadow."""
    _check_version(mlflow_client(settings), spec, version)
    version = str(version)
    if aliases(spec, settings).get("champion") == version:
        raise DeployError(f"version {version} is the champion already")
    alias = "shadow" if shadow else "canary"
    share = percent if percent is not None else spec.deploy.canary_percent
    return move_aliases(
        spec,
        settings,
        f"start_{alias}",
        version,
        {alias: version},
        reason=reason
        or (f"canary on {share:g} % of callers" if not shadow else "shadow: scores copies, answers no one"),
        actor=actor,
        canary_percent=None if shadow else float(share),
        approval=approval,
        states={version: f"{alias} since {_now()}"},
        dag_run=dag_run,
    )


def promote(
    spec: ModelSpec,
    settings: Settings,
    version: str,
    *,
    reason: str,
    actor: str = "deploy",
    figures: dict[str, Any] | None = None,
    approval: dict[str, Any] | None = None,
    dag_run: DagRun | None = None,
) -> dict[str, Any]:
    """Make ``version`` the champion; the old champion becomes ``previous`` (blue/green: both stay loaded)."""
    _check_version(mlflow_client(settings), spec, version)
    version = str(version)
    before = aliases(spec, settings)
    old = before.get("champion")
    if old == version:
        raise DeployError(f"version {version} is the champion already")
    changes: dict[str, str | None] = {"champion": version}
    states = {version: f"champion since {_now()}"}
    if old:
        changes["previous"] = old
        states[old] = f"previous since {_now()}"
    for alias in ("canary", "shadow"):
        if before.get(alias) == version:
            changes[alias] = None
    rec = move_aliases(
        spec,
        settings,
        "promote",
        version,
        changes,
        reason=reason,
        actor=actor,
        figures=figures,
        approval=approval,
        states=states,
        expected=before,
        dag_run=dag_run,
    )
    tag_version(
        spec,
        settings,
        version,
        {"ativo.promoted": json.dumps({"at": _now(), "reason": reason, "actor": actor, "approval": approval})},
    )
    return rec


def end_trial(
    spec: ModelSpec,
    settings: Settings,
    version: str,
    *,
    reason: str,
    actor: str = "deploy",
    figures: dict[str, Any] | None = None,
    dag_run: DagRun | None = None,
) -> dict[str, Any]:
    """Take ``version`` off live traffic (its ``canary`` / ``shadow`` alias), recording why it was rolled back."""
    before = aliases(spec, settings)
    removed: dict[str, str | None] = {a: None for a in ("canary", "shadow") if before.get(a) == str(version)}
    rec = move_aliases(
        spec,
        settings,
        "rollback",
        str(version),
        removed,
        reason=reason,
        actor=actor,
        figures=figures,
        states={str(version): f"rolled back {_now()}"},
        expected=before,
        dag_run=dag_run,
    )
    tag_version(spec, settings, version, {"ativo.rolled_back": reason})
    return rec


def rollback(spec: ModelSpec, settings: Settings, *, reason: str, actor: str = "cli") -> dict[str, Any]:
    """Undo the last move: end a canary or shadow if one is live, else give ``champion`` back to ``previous``.

    Raises:
        DeployError: nothing to roll back (no canary, no shadow, no previous version).
    """
    name = spec.registered_model_name
    before = aliases(spec, settings)
    for alias in ("canary", "shadow"):
        if alias in before:
            return end_trial(spec, settings, before[alias], reason=reason, actor=actor)
    if "previous" not in before:
        raise DeployError(
            f"nothing to roll back for {name}: no canary, shadow or previous version (aliases: {before or 'none'})"
        )
    bad, good = before.get("champion"), before["previous"]
    states = {good: f"champion since {_now()} (rollback)"}
    if bad:
        states[bad] = f"rolled back {_now()}"
    rec = move_aliases(
        spec,
        settings,
        "rollback",
        bad,
        {"champion": good, "previous": None},
        reason=reason,
        actor=actor,
        states=states,
        expected=before,
    )
    if bad:
        tag_version(spec, settings, bad, {"ativo.rolled_back": reason})
    return rec
