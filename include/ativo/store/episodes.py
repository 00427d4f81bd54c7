"""The drift episodes table (``drift_episodes``): the only module that writes it.

A drift episode is announced by the monitor (:func:`announce`, inside its decision's transaction, under
:func:`lock_name`) and from then on belongs to the training-run ledger, :mod:`ativo.train.runs`: the training run
that takes it claims it (:func:`claim_episodes`) until that run settles it (:func:`settle_episodes`), so one episode
retrains once, also when its Asset event is merged with others or lost (the reconciler triggers a run for an
unclaimed one). An episode whose retraining failed is taken again up to :data:`MAX_ATTEMPTS` times; then it is given
up (:func:`given_up`) and on-call is paged with its last run's outcome, which its row keeps (``ativo monitor status``
lists open episodes only, so a given-up one no longer shows there).

Apart from :func:`announce` (the monitor's), only the ledger calls the functions here that write. The table is here,
among the stores, because both the monitor and training use it and training already builds on the monitor (the
reference profile): the ledger in ``train`` cannot be imported by ``monitor`` without a package cycle.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, Engine, desc, func, insert, or_, select, update

from ativo.store.db import drift_episodes, session_lock, utcnow

MAX_ATTEMPTS = 3
"""Retrainings of one episode before it is given up (a budget refusing trials, a search that cannot pass)."""


def lock_name(spec: str) -> str:
    """The session lock that orders a spec's monitoring decisions and episode claims (the same lock for both)."""
    return f"ativo.monitor.{spec}"


def announce(
    conn: Connection,
    *,
    spec: str,
    version: str,
    window_start: dt.datetime,
    window_end: dt.datetime,
    reasons: list[str],
    report_uri: str | None,
    emitted_at: dt.datetime,
) -> int:
    """Record a new episode in the caller's transaction (the monitor's decision); returns its id."""
    key = conn.execute(
        insert(drift_episodes).values(
            spec=spec,
            version=version,
            window_start=window_start,
            window_end=window_end,
            reasons=reasons,
            report_uri=report_uri,
            emitted_at=emitted_at,
            attempt=0,
        )
    ).inserted_primary_key
    assert key is not None
    return int(key[0])


def latest_window(conn: Connection, spec: str) -> dict[str, Any] | None:
    """The spec's episode whose window ended last, read in the caller's transaction (the monitor's cooldown)."""
    row = (
        conn.execute(
            select(drift_episodes)
            .where(drift_episodes.c.spec == spec)
            .order_by(desc(drift_episodes.c.window_end))
            .limit(1)
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None


def counts(engine: Engine) -> dict[str, int]:
    """Per spec: how many drift episodes were announced (specs without one are left out)."""
    with engine.connect() as conn:
        rows = conn.execute(select(drift_episodes.c.spec, func.count()).group_by(drift_episodes.c.spec)).all()
    return {str(spec): int(n) for spec, n in rows}


def _open() -> Any:
    """Untaken, or failed fewer than :data:`MAX_ATTEMPTS` times."""
    return or_(
        drift_episodes.c.dag_run_id.is_(None),
        drift_episodes.c.outcome.like("failed%") & (drift_episodes.c.attempt < MAX_ATTEMPTS),
    )


def open_episodes(engine: Engine, spec: str) -> list[dict[str, Any]]:
    """Episodes no training run has taken, or whose run failed fewer than :data:`MAX_ATTEMPTS` times (oldest first)."""
    with engine.connect() as conn:
        rows = (
            conn.execute(
                select(drift_episodes).where(drift_episodes.c.spec == spec, _open()).order_by(drift_episodes.c.id)
            )
            .mappings()
            .all()
        )
    return [dict(r) for r in rows]


def given_up(engine: Engine, spec: str, dag_run_id: str) -> list[dict[str, Any]]:
    """The run's episodes that failed their last allowed attempt."""
    with engine.connect() as conn:
        rows = (
            conn.execute(
                select(drift_episodes).where(
                    drift_episodes.c.spec == spec,
                    drift_episodes.c.dag_run_id == dag_run_id,
                    drift_episodes.c.outcome.like("failed%"),
                    drift_episodes.c.attempt >= MAX_ATTEMPTS,
                )
            )
            .mappings()
            .all()
        )
    return [dict(r) for r in rows]


def claim_episodes(engine: Engine, spec: str, dag_run_id: str) -> list[dict[str, Any]]:
    """Take all the open episodes for a training run; returns those this run now holds.

    A run already holding an episode (a retry) keeps it; an episode held by another live run is not taken.
    """
    with session_lock(engine, lock_name(spec)):
        for ep in open_episodes(engine, spec):
            with engine.begin() as conn:
                conn.execute(
                    update(drift_episodes)
                    .where(drift_episodes.c.id == ep["id"], _open())
                    .values(
                        dag_run_id=dag_run_id, claimed_at=utcnow(), attempt=drift_episodes.c.attempt + 1, outcome=None
                    )
                )
        return held_by(engine, spec, dag_run_id)


def _held(spec: str, dag_run_id: str) -> Any:
    """Episodes of ``spec`` that the run ``dag_run_id`` holds and has not settled."""
    return (
        (drift_episodes.c.spec == spec)
        & (drift_episodes.c.dag_run_id == dag_run_id)
        & drift_episodes.c.outcome.is_(None)
    )


def held_by(engine: Engine, spec: str, dag_run_id: str) -> list[dict[str, Any]]:
    """The episodes a training run holds and has not settled (oldest first)."""
    with engine.connect() as conn:
        held = (
            conn.execute(select(drift_episodes).where(_held(spec, dag_run_id)).order_by(drift_episodes.c.id))
            .mappings()
            .all()
        )
    return [dict(r) for r in held]


def hand_over(engine: Engine, spec: str, from_run: str, to_run: str) -> int:
    """Give the episodes ``from_run`` holds to ``to_run`` (the run already training the latest data covers them)."""
    with engine.begin() as conn:
        return int(conn.execute(update(drift_episodes).where(_held(spec, from_run)).values(dag_run_id=to_run)).rowcount)


def settle_episodes(engine: Engine, spec: str, dag_run_id: str, outcome: str) -> int:
    """Record how the run's episodes ended (``failed: …`` lets another run take them); returns how many."""
    with engine.begin() as conn:
        return int(
            conn.execute(update(drift_episodes).where(_held(spec, dag_run_id)).values(outcome=outcome[:500])).rowcount
        )
