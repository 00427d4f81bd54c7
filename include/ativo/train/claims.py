"""Which dataset version a training run trains, so that every version is covered and none is trained twice.

Airflow 3.3 merges or drops asset events that arrive while the consuming DAG is busy (apache/airflow#56050), so the
features Asset alone does not guarantee a training run per dataset version. Here the guarantee is the platform DB's:

- An automatic run (an asset event, or the reconciler) trains the **latest** dataset version at the moment it plans
  (coalescing: training on v0018 covers v0003…v0017) and first **claims** it; a version another run has claimed is
  not trained again, and the run says which run claimed it.
- The reconciler DAG (``<spec>__reconcile``, on ``schedule.reconcile_cron``) triggers a training run, named
  ``reconcile__<tag>`` and noted with why, whenever the latest version has no claim.
- A run asked for by hand trains what it names (or the latest), even when it was trained before: a person asked.

So every version that is the latest at some moment is trained, or superseded by a newer one that is; never twice
automatically.

A **drift** run (a drift episode, :mod:`ativo.store.episodes`) trains the latest version too. When no run has
trained it yet, it claims it like any automatic run; when a run is training it right now, that run covers the
episode (the drift run skips); when it was trained already, the drift run retrains it with new trials (``again``):
the world moved, and the latest data is all there is. When the latest data was trained by a run that registered
another version than the drifting one, that version answers the drift (a challenger on its way): no retraining.

This is the storage of the training-run ledger, :mod:`ativo.train.runs` (the ``training_claims`` table): only it calls
the functions here that write.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from ativo.data.versioning import recorded_version
from ativo.errors import DatasetVersionError
from ativo.store.db import training_claims, utcnow

AUTOMATIC = ("asset", "reconciler", "drift")


@dataclass(frozen=True)
class Plan:
    """What a training run does: train ``tag``, or skip (``skip`` says why)."""

    tag: str | None
    trigger: str
    reason: str
    skip: str | None = None
    again: bool = False  # a drift run retraining a version already trained: the search draws new trials
    covered_by: str | None = None  # a drift run skipped because this run is training the latest version now
    covered_version: str | None = None  # a drift run skipped because this model version was trained on the latest


def latest_version(engine: Engine, spec: str) -> tuple[str, int] | None:
    """(tag, number) of the spec's newest dataset version, None before the first."""
    latest = recorded_version(engine, spec)
    return (latest.tag, latest.version) if latest else None


def claim_of(engine: Engine, spec: str, tag: str) -> dict[str, Any] | None:
    """The claim on a dataset version, if a run made one."""
    with engine.connect() as conn:
        row = (
            conn.execute(
                select(training_claims).where(training_claims.c.spec == spec, training_claims.c.dataset_version == tag)
            )
            .mappings()
            .first()
        )
    return dict(row) if row else None


def _version_number(engine: Engine, spec: str, tag: str) -> int:
    recorded = recorded_version(engine, spec, tag) if tag else None
    return recorded.version if recorded else 0


def _claim(engine: Engine, spec: str, tag: str, dag_run_id: str, trigger: str, reason: str) -> dict[str, Any]:
    """Claim ``tag`` for the run; returns the claim that holds (this run's, or the one made first).

    A claim whose run failed is taken over (its attempt count goes up): a failed run does not cover its version.
    """
    values = {
        "spec": spec,
        "dataset_version": tag,
        "version": _version_number(engine, spec, tag),
        "dag_run_id": dag_run_id,
        "trigger": trigger,
        "reason": reason[:500],
        "claimed_at": utcnow(),
        "attempt": 1,
        "outcome": None,
    }
    try:
        with engine.begin() as conn:
            conn.execute(insert(training_claims).values(**values))
        return values
    except IntegrityError:
        pass
    held = claim_of(engine, spec, tag)
    assert held is not None
    if held["dag_run_id"] != dag_run_id and failed(held):
        with engine.begin() as conn:
            taken = conn.execute(
                update(training_claims)
                .where(
                    training_claims.c.spec == spec,
                    training_claims.c.dataset_version == tag,
                    training_claims.c.dag_run_id == held["dag_run_id"],
                    training_claims.c.outcome.like("failed%"),
                )
                .values(
                    dag_run_id=dag_run_id,
                    trigger=trigger,
                    reason=reason[:500],
                    claimed_at=utcnow(),
                    attempt=training_claims.c.attempt + 1,
                    outcome=None,
                )
            ).rowcount
        held = claim_of(engine, spec, tag) or held
        if taken:
            return held
    return held


def claimed_version(claim: dict[str, Any]) -> str | None:
    """The model version a settled claim's run registered (or found its model duplicated), if it says."""
    import re

    found = re.search(r"version (\d+)", str(claim.get("outcome") or ""))
    return found.group(1) if found and not failed(claim) else None


def take_over(engine: Engine, spec: str, tag: str, stale_run: str, dag_run_id: str, reason: str) -> bool:
    """Take the claim on ``tag`` from a run that ended without settling it; whether this run now holds it."""
    with engine.begin() as conn:
        return bool(
            conn.execute(
                update(training_claims)
                .where(
                    training_claims.c.spec == spec,
                    training_claims.c.dataset_version == tag,
                    training_claims.c.dag_run_id == stale_run,
                    training_claims.c.outcome.is_(None),
                )
                .values(
                    dag_run_id=dag_run_id,
                    trigger="drift",
                    reason=reason[:500],
                    claimed_at=utcnow(),
                    attempt=training_claims.c.attempt + 1,
                )
            ).rowcount
        )


def failed(claim: dict[str, Any]) -> bool:
    """Whether the claim's run ended without a model for its version."""
    return str(claim.get("outcome") or "").startswith("failed")


def run_claim(engine: Engine, spec: str, dag_run_id: str) -> dict[str, Any] | None:
    """The dataset claim a training run made (its latest, with its ``outcome``: None while open), or None."""
    with engine.connect() as conn:
        row = (
            conn.execute(
                select(training_claims)
                .where(training_claims.c.spec == spec, training_claims.c.dag_run_id == dag_run_id)
                .order_by(training_claims.c.claimed_at.desc())
            )
            .mappings()
            .first()
        )
    return dict(row) if row else None


def settle(engine: Engine, spec: str, dag_run_id: str, outcome: str) -> int:
    """Record how a run's claim ended (``failed: …`` lets another run take its version); returns the claims settled.

    Only a claim still open is settled, so the first word stands (a duplicate noted by the search is not overwritten
    by the failure its skipped gates look like).
    """
    with engine.begin() as conn:
        return int(
            conn.execute(
                update(training_claims)
                .where(
                    training_claims.c.spec == spec,
                    training_claims.c.dag_run_id == dag_run_id,
                    training_claims.c.outcome.is_(None),
                )
                .values(outcome=outcome[:500])
            ).rowcount
        )


def plan_training(
    engine: Engine,
    spec: str,
    dag_run_id: str,
    *,
    requested: str | None,
    trigger: str,
    event_tags: list[str] | None = None,
    reason: str | None = None,
    drifting: set[str] | None = None,
) -> Plan:
    """Decide what a training run trains (see the module doc).

    Args:
        engine: the platform DB.
        spec: the spec's name.
        dag_run_id: the run deciding.
        requested: the dataset version a person asked for (manual runs only).
        trigger: ``asset`` (features Asset events), ``reconciler``, ``drift`` or ``manual``.
        event_tags: the dataset versions of the triggering asset events (they are covered by the latest).
        reason: why the run was triggered, as its trigger said.
        drifting: the model versions whose drift a ``drift`` run answers (a version trained on the latest data
            that is not among them answers it already).
    """
    latest = latest_version(engine, spec)
    if trigger not in AUTOMATIC:
        if requested and not _version_number(engine, spec, requested):
            raise DatasetVersionError(
                f"{spec} has no dataset version {requested!r} (the latest is {latest[0] if latest else 'none yet'})"
            )
        tag = requested or (latest[0] if latest else None)
        if tag is None:
            return Plan(None, trigger, "asked by hand", skip=f"{spec} has no dataset version yet")
        why = reason or (f"asked by hand for {tag}" if requested else f"asked by hand: the latest, {tag}")
        if claim_of(engine, spec, tag) is None:
            _claim(engine, spec, tag, dag_run_id, trigger, why)
        return Plan(tag, trigger, why)
    if latest is None:
        return Plan(None, trigger, reason or trigger, skip=f"{spec} has no dataset version yet")
    tag = latest[0]
    if trigger == "drift":
        why = reason or "drift"
        held = _claim(engine, spec, tag, dag_run_id, trigger, why)
        if held["dag_run_id"] == dag_run_id:
            return Plan(tag, trigger, f"{why}; trains the latest dataset version, {tag}")
        if held["outcome"] is None:
            return Plan(
                None,
                trigger,
                why,
                covered_by=str(held["dag_run_id"]),
                skip=(
                    f"run {held['dag_run_id']} is training the latest dataset version, {tag}, now: it covers the drift"
                ),
            )
        trained = claimed_version(held)
        if trained is not None and trained not in (drifting or set()):
            return Plan(
                None,
                trigger,
                why,
                covered_version=trained,
                skip=(
                    f"the latest dataset version, {tag}, was trained by run {held['dag_run_id']} ({held['outcome']}): "
                    f"version {trained} is the answer to this drift; no retraining on the same data"
                ),
            )
        return Plan(
            tag,
            trigger,
            f"{why}; retrains the latest dataset version, {tag} (trained before by run "
            f"{held['dag_run_id']}: {held['outcome']}) with new trials",
            again=True,
        )
    covered = sorted({t for t in (event_tags or []) if t != tag})
    why = reason or (f"asset event(s) for {', '.join(event_tags or [])}" if event_tags else trigger)
    if covered:
        why += f"; trains the latest, {tag}, which covers {', '.join(covered)}"
    held = _claim(engine, spec, tag, dag_run_id, trigger, why)
    if held["dag_run_id"] != dag_run_id:
        return Plan(
            None,
            trigger,
            why,
            skip=(
                f"the latest dataset version, {tag}, was claimed by run {held['dag_run_id']} at {held['claimed_at']} "
                f"({held['reason']}): it is not trained twice"
            ),
        )
    return Plan(tag, trigger, why)


def reconcile(engine: Engine, spec: str) -> dict[str, Any] | None:
    """What the reconciler should trigger: the latest version when no run has claimed it, or its run failed.

    Returns:
        None, or ``{"tag", "version", "run_id", "reason"}``: ``run_id`` is the same on every tick until a run of it
        has claimed the version (so a tick while it is queued triggers nothing new), and new after a failed attempt.
    """
    latest = latest_version(engine, spec)
    if latest is None:
        return None
    tag, number = latest
    held = claim_of(engine, spec, tag)
    if held is None:
        return {
            "tag": tag,
            "version": number,
            "run_id": f"reconcile__{tag}",
            "reason": f"reconciler: the latest dataset version, {tag}, has no training run (its asset event "
            "was merged or dropped while training was busy)",
        }
    if failed(held):
        attempt = int(held.get("attempt") or 1) + 1
        return {
            "tag": tag,
            "version": number,
            "run_id": f"reconcile__{tag}__{attempt}",
            "reason": f"reconciler: the training of the latest dataset version, {tag}, by run "
            f"{held['dag_run_id']} {held['outcome']}; attempt {attempt}",
        }
    return None
