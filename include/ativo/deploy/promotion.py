"""Deployment state is registry aliases: ``champion``, ``canary``, ``shadow``, ``previous``.

Servers follow the aliases (:mod:`ativo.serve.live`), so every move here is a deployment: a canary starts when
``canary`` is set, a promotion moves ``champion`` and keeps the old one as ``previous`` (still loaded, so a
rollback is instant), a rollback moves them back. Each move is recorded with who, why and the figures it rested
on, as a JSON object in ``deployments/<spec>/`` of the object store and as tags on the versions concerned.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import TYPE_CHECKING, Any

from ativo.errors import AtivoError
from ativo.serve.live import CANARY_PERCENT_TAG
from ativo.spec import ModelSpec

if TYPE_CHECKING:
    from ativo.config import Settings


class DeployError(AtivoError):
    """A deployment move that cannot be made (nothing to roll back, no such version, …)."""


def _client(settings: Settings) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(settings.mlflow_tracking_uri)


def aliases(spec: ModelSpec, settings: Settings) -> dict[str, str]:
    """Alias → version of the spec's registered model ({} when nothing is registered)."""
    from mlflow.exceptions import MlflowException

    try:
        rm = _client(settings).get_registered_model(spec.registered_model_name)
    except MlflowException:
        return {}
    return {str(k): str(v) for k, v in (rm.aliases or {}).items()}


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def record(spec: ModelSpec, settings: Settings, action: str, version: str | None, reason: str, actor: str,
           before: dict[str, str], after: dict[str, str],
           figures: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """Write one deployment record (``deployments/<spec>/<time>-<action>-<id>.json``) and return it."""
    from ativo.store.objects import open_store

    rec = {"spec": spec.name, "model": spec.registered_model_name, "action": action, "version": version,
           "reason": reason, "actor": actor, "at": _now(), "aliases_before": before, "aliases_after": after,
           "figures": figures or {}}  # fmt: skip
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%f")  # keys sort in the order the moves happened
    key = f"deployments/{spec.name}/{stamp}-{action}-{uuid.uuid4().hex[:8]}.json"
    rec["uri"] = open_store(settings).put_bytes(key, json.dumps(rec, indent=2, default=str).encode())
    return rec


def history(spec: ModelSpec, settings: Settings) -> list[dict[str, Any]]:
    """Every deployment record of the spec, oldest first."""
    from ativo.store.objects import open_store

    store = open_store(settings)
    return [json.loads(store.get_bytes(k)) for k in store.list(f"deployments/{spec.name}") if k.endswith(".json")]


def _check_version(client: Any, spec: ModelSpec, version: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_model_version(spec.registered_model_name, str(version))
    except MlflowException:
        raise DeployError(f"model {spec.registered_model_name} has no version {version!r}") from None


def start_trial(spec: ModelSpec, settings: Settings, version: str, *, shadow: bool = False,
                percent: float | None = None, reason: str = "", actor: str = "deploy") -> dict[str, Any]:  # fmt: skip
    """Put ``version`` on live traffic as the canary (``percent`` % of callers) or as the shadow."""
    client = _client(settings)
    name = spec.registered_model_name
    _check_version(client, spec, version)
    before = aliases(spec, settings)
    if before.get("champion") == version:
        raise DeployError(f"version {version} is the champion already")
    alias = "shadow" if shadow else "canary"
    if percent is not None:
        client.set_registered_model_tag(name, CANARY_PERCENT_TAG, str(float(percent)))
    else:
        _delete_tag(client, name, CANARY_PERCENT_TAG)
    client.set_registered_model_alias(name, alias, str(version))
    client.set_model_version_tag(name, str(version), "ativo.deploy_state", f"{alias} since {_now()}")
    share = f"{percent if percent is not None else spec.deploy.canary_percent:g} % of callers"
    return record(spec, settings, f"start_{alias}", str(version),
                  reason or (f"canary on {share}" if not shadow else "shadow: scores copies, answers no one"),
                  actor, before, aliases(spec, settings))  # fmt: skip


def _delete_tag(client: Any, name: str, key: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.delete_registered_model_tag(name, key)
    except MlflowException:
        pass


def _delete_alias(client: Any, name: str, alias: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.delete_registered_model_alias(name, alias)
    except MlflowException:
        pass


def promote(spec: ModelSpec, settings: Settings, version: str, *, reason: str, actor: str = "deploy",
            figures: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """Make ``version`` the champion; the old champion becomes ``previous`` (blue/green: both stay loaded)."""
    client = _client(settings)
    name = spec.registered_model_name
    version = str(version)
    _check_version(client, spec, version)
    before = aliases(spec, settings)
    old = before.get("champion")
    if old == version:
        raise DeployError(f"version {version} is the champion already")
    if old:
        client.set_registered_model_alias(name, "previous", old)
        client.set_model_version_tag(name, old, "ativo.deploy_state", f"previous since {_now()}")
    client.set_registered_model_alias(name, "champion", version)
    for alias in ("canary", "shadow"):
        if before.get(alias) == version:
            _delete_alias(client, name, alias)
    client.set_model_version_tag(name, version, "ativo.deploy_state", f"champion since {_now()}")
    client.set_model_version_tag(name, version, "ativo.promoted", json.dumps({"at": _now(), "reason": reason,
                                                                              "actor": actor})[:5000])  # fmt: skip
    return record(spec, settings, "promote", version, reason, actor, before, aliases(spec, settings), figures)


def end_trial(spec: ModelSpec, settings: Settings, version: str, *, reason: str, actor: str = "deploy",
              figures: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """Take ``version`` off live traffic (its ``canary`` / ``shadow`` alias), recording why it was rolled back."""
    client = _client(settings)
    name = spec.registered_model_name
    before = aliases(spec, settings)
    removed = [a for a in ("canary", "shadow") if before.get(a) == str(version)]
    for alias in removed:
        _delete_alias(client, name, alias)
    client.set_model_version_tag(name, str(version), "ativo.deploy_state", f"rolled back {_now()}")
    client.set_model_version_tag(name, str(version), "ativo.rolled_back", reason[:5000])
    return record(spec, settings, "rollback", str(version), reason, actor, before, aliases(spec, settings), figures)


def rollback(spec: ModelSpec, settings: Settings, *, reason: str, actor: str = "cli") -> dict[str, Any]:
    """Undo the last move: end a canary or shadow if one is live, else give ``champion`` back to ``previous``.

    Raises:
        DeployError: nothing to roll back (no canary, no shadow, no previous version).
    """
    client = _client(settings)
    name = spec.registered_model_name
    before = aliases(spec, settings)
    for alias in ("canary", "shadow"):
        if alias in before:
            return end_trial(spec, settings, before[alias], reason=reason, actor=actor)
    if "previous" not in before:
        raise DeployError(f"nothing to roll back for {name}: no canary, shadow or previous version "
                          f"(aliases: {before or 'none'})")  # fmt: skip
    bad, good = before.get("champion"), before["previous"]
    client.set_registered_model_alias(name, "champion", good)
    _delete_alias(client, name, "previous")
    client.set_model_version_tag(name, good, "ativo.deploy_state", f"champion since {_now()} (rollback)")
    if bad:
        client.set_model_version_tag(name, bad, "ativo.deploy_state", f"rolled back {_now()}")
        client.set_model_version_tag(name, bad, "ativo.rolled_back", reason[:5000])
    return record(spec, settings, "rollback", bad, reason, actor, before, aliases(spec, settings))
