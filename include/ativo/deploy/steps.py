"""The steps of a deployment, as plain functions the deploy DAG wires (and a test or a notebook can call).

:func:`version_to_deploy` picks the version, :func:`begin` puts it on live traffic (or makes it champion when there is
none yet), :func:`check` judges it on the servers' live figures, :func:`conclude` promotes it or rolls it back,
recording why, and :func:`finish` ends a run whatever happened before it (a trial left half-begun is taken off).
"""

from __future__ import annotations

import time
from typing import Any

from ativo.config import Settings
from ativo.deploy.promotion import DeployError, end_trial, promote, start_trial
from ativo.deploy.watch import Verdict, judge, label_figures, scrape, since
from ativo.http import HttpError, get_json
from ativo.model.registry import DagRun, aliases
from ativo.spec import ModelSpec
from ativo.waiting import WaitTimeout, wait_until


def server_versions(urls: tuple[str, ...] | list[str], model: str, timeout: float = 5.0) -> list[dict[str, str] | None]:
    """Alias → version of ``model`` each server reports on ``/models/<model>/health``.

    None for a server that does not answer, or does not serve that model: a version is always (model, version).
    """
    out: list[dict[str, str] | None] = []
    for base in urls:
        try:
            # Tried once (its callers poll), and 503 is an answer here: "no champion" still carries the versions.
            doc = get_json(f"{base.rstrip('/')}/models/{model}/health", timeout=timeout, attempts=1, retry_statuses=())
        except HttpError as err:
            doc = err.body
        try:
            out.append(dict(doc["versions"]) if doc["model"] == model else None)
        except (TypeError, ValueError, KeyError):
            out.append(None)
    return out


def wait_for_servers(
    urls: tuple[str, ...] | list[str], model: str, alias: str, version: str | None, timeout: float = 120.0
) -> None:
    """Block until every server serves ``model``'s ``version`` under ``alias`` (``None``: no longer has the alias).

    Raises:
        DeployError: a server did not follow within ``timeout`` (it cannot load the version, or is down).
    """
    seen: list[dict[str, str] | None] = []

    def followed() -> bool:
        nonlocal seen
        seen = server_versions(urls, model)
        return all(s is not None and s.get(alias) == version for s in seen)

    try:
        wait_until(followed, timeout, 0.5, f"the servers of {model} to follow alias {alias!r} → {version}")
    except WaitTimeout as err:
        raise DeployError(
            f"the servers of {model} did not follow alias {alias!r} → {version} within {timeout:.0f}s "
            f"(they report {dict(zip(urls, seen, strict=False))})"
        ) from err


def version_to_deploy(spec: ModelSpec, settings: Settings, requested: str | None, events: list[dict[str, Any]]) -> str:
    """The version a deployment run is about.

    The one asked for, else the newest triggering event's, else the one holding the alias ``challenger``.

    Args:
        spec: the model spec.
        settings: where the registry is.
        requested: the run's ``version`` parameter (empty when none was given).
        events: the extras of the challenger Asset events that triggered the run.
    """
    if requested:
        return str(requested)
    versions = [str(e["version"]) for e in events if e.get("version")]
    if versions:
        return max(versions, key=int)
    from ativo.model.artifact import registered_version

    return registered_version(spec, settings.mlflow_tracking_uri, alias="challenger").version


def authorized_or_refuse(
    spec: ModelSpec, settings: Settings, version: str, *, actor: str, requested: bool = False
) -> dict[str, Any]:
    """The version's passing gate record; a refusal is audited (who asked for what, and why not) and raised.

    Raises:
        DeployRefused: the version is rejected, ungated, or gated under another spec (its failed gates named).
    """
    from ativo.deploy.promotion import DeployRefused
    from ativo.model.registry import PromotionRefused, authorize

    if not str(version).isdigit():  # free text here would reach the audit log (an id in it would wedge its erasure)
        raise DeployRefused(
            "deploy refused: field 'version': give a registered version number (digits only); the "
            "value given was not one and is not recorded",
            "",
        )
    try:
        return authorize(spec, settings, str(version))
    except PromotionRefused as err:
        from ativo.audit import append
        from ativo.store.db import get_engine

        append(
            get_engine(settings.db_url),
            "deploy_refused",
            actor,
            spec.name,
            {
                "version": str(version),
                "requested": requested,
                "failed_gates": list(err.failed_gates),
                "reason": str(err)[:1000],
            },
        )
        raise DeployRefused(f"deploy refused: {err}", err.version, err.failed_gates) from err


def infra_check(spec: ModelSpec, settings: Settings, version: str) -> Any:
    """The infra gate on ``version``: loaded through serving's loader, answering, within the latency budget.

    Its requests are rows of the version's pinned test set, or, for a version registered without a dataset
    version, rows of the reference data.
    """
    from ativo.evaluate.infra import infra_gate
    from ativo.evaluate.suite import gate_version
    from ativo.model.artifact import registered_version
    from ativo.serve.traffic import reference_rows

    if registered_version(spec, settings.mlflow_tracking_uri, version).dataset_version:
        return gate_version("infra", spec, settings, str(version))
    sample = [row["features"] for row, _ in reference_rows(spec, settings.reference_dir, 200)]
    return infra_gate(spec, settings.mlflow_tracking_uri, str(version), sample)


def begin(
    spec: ModelSpec,
    settings: Settings,
    version: str,
    *,
    actor: str = "deploy",
    wait_s: float = 120.0,
    approval: dict[str, Any] | None = None,
    dag_run: DagRun | None = None,
) -> dict[str, Any]:
    """Put ``version`` on trial (canary, or shadow when ``deploy.shadow``); with no champion yet, promote it.

    ``dag_run`` (the deploy DAG run doing it) is named by every record this writes.

    Returns:
        The trial's state: mode (``direct`` / ``canary`` / ``shadow``), versions, start time and the figures
        snapshot the watch subtracts.
    """
    version = str(version)
    if approval is not None:
        from ativo.deploy.approvals import note_on_card
        from ativo.model.registry import authorize

        note_on_card(spec, settings, version, approval, authorize(spec, settings, version))
    current = aliases(spec, settings)
    champion = current.get("champion")
    if champion is None:
        rec = promote(
            spec,
            settings,
            version,
            actor=actor,
            approval=approval,
            reason="first version to pass every gate: no champion to compare it with",
            dag_run=dag_run,
        )
        _follow(spec, settings, "champion", version, wait_s)
        return {"mode": "direct", "version": version, "champion": None, "record": rec}
    if champion == version:
        raise DeployError(f"version {version} is the champion already: nothing to deploy")
    route = "shadow" if spec.deploy.shadow else "canary"
    # The snapshot is taken before the candidate gets traffic, so every row it serves counts.
    baseline = scrape(list(settings.servers_of(spec.name)), spec.registered_model_name)
    rec = start_trial(
        spec, settings, version, shadow=spec.deploy.shadow, actor=actor, approval=approval, dag_run=dag_run
    )
    try:
        _follow(spec, settings, route, version, wait_s)
    except DeployError as err:
        reason = f"the servers could not put it on trial: {err}"
        end_trial(spec, settings, version, reason=reason, actor=actor, dag_run=dag_run)
        raise
    return {
        "mode": route,
        "route": route,
        "version": version,
        "champion": champion,
        "started": time.time(),
        "baseline": baseline,
        "record": rec,
        "actor": actor,
        "approval": approval,
    }


def _follow(spec: ModelSpec, settings: Settings, alias: str, version: str | None, wait_s: float) -> None:
    urls = settings.servers_of(spec.name)
    if urls and wait_s > 0:
        wait_for_servers(urls, spec.registered_model_name, alias, version, wait_s)


def check(spec: ModelSpec, settings: Settings, state: dict[str, Any]) -> Verdict:
    """Judge the trial now (see :mod:`ativo.deploy.watch`)."""
    from ativo.store.objects import open_store

    if state["mode"] == "direct":
        return Verdict(True, True, "promoted directly (no champion to compare with)")
    current = aliases(spec, settings)
    if current.get(state["route"]) != state["version"]:
        return Verdict(
            True,
            False,
            f"the {state['route']} alias no longer points at version {state['version']} "
            f"(now {current}): the trial was ended by hand",
        )
    figures = since(scrape(list(settings.servers_of(spec.name)), spec.registered_model_name), state["baseline"])
    labels = label_figures(
        open_store(settings), spec, state["started"], state["version"], state["route"], state["champion"]
    )
    return judge(
        spec,
        figures,
        candidate=state["version"],
        champion=state["champion"],
        route=state["route"],
        elapsed_s=time.time() - state["started"],
        labels=labels,
    )


def conclude(
    spec: ModelSpec,
    settings: Settings,
    state: dict[str, Any],
    verdict: Verdict,
    *,
    actor: str | None = None,
    wait_s: float = 120.0,
    dag_run: DagRun | None = None,
) -> dict[str, Any]:
    """Promote on a passing verdict, roll back otherwise; returns the deployment record.

    The actor is the one who began the trial (``state["actor"]``) unless given; ``dag_run`` is the run concluding it.
    """
    actor = actor or state.get("actor") or "deploy"
    if state["mode"] == "direct":
        return dict(state["record"])
    version = state["version"]
    if verdict.promote:
        rec = promote(
            spec,
            settings,
            version,
            reason=verdict.reason,
            actor=actor,
            figures=verdict.figures,
            approval=state.get("approval"),
            dag_run=dag_run,
        )
        _follow(spec, settings, "champion", version, wait_s)
        return rec
    current = aliases(spec, settings)
    if current.get(state["route"]) != version:
        rec = {"action": "none", "version": version, "reason": verdict.reason, "aliases_after": current}
        return rec
    rec = end_trial(
        spec, settings, version, reason=verdict.reason, actor=actor, figures=verdict.figures, dag_run=dag_run
    )
    _follow(spec, settings, state["route"], None, wait_s)
    return rec


class DeploymentAbandoned(DeployError):
    """The deployment never reached its watch (the infra check or the start failed).

    ``record`` is the trial that was ended because of it, if one had begun.
    """

    def __init__(self, message: str, record: dict[str, Any] | None) -> None:
        super().__init__(message)
        self.record = record


def finish(
    spec: ModelSpec,
    settings: Settings,
    checked: dict[str, Any] | None,
    state: dict[str, Any] | None,
    verdict: dict[str, Any] | None,
    dag_run: DagRun | None = None,
) -> tuple[dict[str, Any], bool]:
    """The end of a deployment run, whatever happened before it: returns (the record, whether to page on-call).

    On-call is paged for a rollback of a candidate shown beyond a limit, or when the watch failed; not for one the
    window ended on without evidence either way (the record says why).

    Args:
        spec: the model spec.
        settings: where things are.
        checked: what the infra check returned (None when it failed).
        state: what :func:`begin` returned (None when it, or the infra check, failed).
        verdict: the watch's last verdict (None when the watch failed before judging).
        dag_run: the deploy DAG run ending (named by the record this writes).

    Raises:
        DeploymentAbandoned: there was no trial to conclude; a version left on trial by a half-done start is taken
            off it first.
    """
    if not state:
        version = (checked or {}).get("version")
        rec = None
        current = aliases(spec, settings)
        if version and version in (current.get("canary"), current.get("shadow")):  # a half-begun trial
            reason = "the deployment failed before the watch began"
            rec = end_trial(spec, settings, version, reason=reason, dag_run=dag_run)
        held = " (or, with four eyes, it was not approved by another person: it is held)" * (
            spec.deploy.approval == "required"
        )
        raise DeploymentAbandoned(
            f"version {version or '?'} was not deployed: infra_check or start failed{held} (see their logs)", rec
        )
    failed = Verdict(True, False, "the watch failed before it could judge (see the watch task's log)")
    judged = Verdict(**verdict) if verdict else failed
    rec = conclude(spec, settings, state, judged, dag_run=dag_run)
    # a rollback for harm (or a failed watch) pages; one for lack of evidence at the window's end is recorded only
    return rec, rec.get("action") == "rollback" and not judged.undecided
