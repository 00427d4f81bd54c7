"""The trial slots of a search, claimed by the worker tasks that run them: one row per trial, the search's trial table.

A search of ``n`` trials has slots ``0 … n-1`` (a slot seeds its trial's sampler, so a search draws the same trials
whoever runs them). Its worker tasks, as many as its pool runs at once, each claim the lowest free slot, run that
trial and claim again until none is left: a task start is paid per worker, not per trial, and a slow trial delays
no other. A claim is a row insert, so two workers never run the same slot; a retried worker first runs again the
slots it claimed and did not finish (its earlier try died in them).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from ativo.store.db import search_slots, utcnow

DONE = ("complete", "pruned", "failed", "refused")


def claim(engine: Engine, spec: str, study: str, n_slots: int, worker: str) -> dict[str, Any] | None:
    """The next slot for ``worker``: one it claimed and did not finish (a retry), else the lowest unclaimed one.

    Returns ``{"slot", "attempt", "trial_number"}`` (``trial_number`` of an earlier attempt's trial, which that
    attempt left running), or None when every slot is claimed.
    """
    with engine.begin() as conn:
        mine = conn.execute(
            select(search_slots.c.slot, search_slots.c.attempt, search_slots.c.trial_number)
            .where(search_slots.c.study == study, search_slots.c.worker == worker, search_slots.c.state.is_(None))
            .order_by(search_slots.c.slot)
        ).first()
        if mine is not None:
            conn.execute(
                update(search_slots)
                .where(search_slots.c.study == study, search_slots.c.slot == mine.slot)
                .values(attempt=mine.attempt + 1, claimed_at=utcnow())
            )
            return {"slot": int(mine.slot), "attempt": int(mine.attempt) + 1, "trial_number": mine.trial_number}
        taken = {int(r[0]) for r in conn.execute(select(search_slots.c.slot).where(search_slots.c.study == study))}
    for slot in (s for s in range(n_slots) if s not in taken):
        try:
            with engine.begin() as conn:
                conn.execute(
                    insert(search_slots).values(
                        study=study, slot=slot, spec=spec, worker=worker, attempt=1, claimed_at=utcnow()
                    )
                )
        except IntegrityError:
            continue  # another worker took it first
        return {"slot": slot, "attempt": 1, "trial_number": None}
    return None


def started(engine: Engine, study: str, slot: int, trial_number: int, label: str, run_id: str | None = None) -> None:
    """Record the trial the study gave a slot (as soon as it is asked, so a retry can close it)."""
    with engine.begin() as conn:
        conn.execute(
            update(search_slots)
            .where(search_slots.c.study == study, search_slots.c.slot == slot)
            .values(trial_number=trial_number, label=label[:500], run_id=run_id)
        )


def finish(
    engine: Engine,
    study: str,
    slot: int,
    state: str,
    *,
    value: float | None = None,
    seconds: float | None = None,
    reason: str | None = None,
) -> None:
    """Close a slot: ``complete``, ``pruned``, ``failed`` (the trial raised) or ``refused`` (by the budget)."""
    if state not in DONE:
        raise ValueError(f"slot state {state!r}: one of {', '.join(DONE)}")
    with engine.begin() as conn:
        conn.execute(
            update(search_slots)
            .where(search_slots.c.study == study, search_slots.c.slot == slot)
            .values(
                state=state,
                value=value,
                seconds=seconds,
                reason=(reason or None) and reason[:1000],
                finished_at=utcnow(),
            )
        )


def table(engine: Engine, study: str) -> list[dict[str, Any]]:
    """The search's trial table, by slot."""
    with engine.connect() as conn:
        rows = (
            conn.execute(select(search_slots).where(search_slots.c.study == study).order_by(search_slots.c.slot))
            .mappings()
            .all()
        )
    return [dict(r) for r in rows]


def summary(engine: Engine, study: str, n_slots: int) -> str:
    """One line: how many of the search's slots ended how (and how many no worker reached)."""
    rows = table(engine, study)
    counts: dict[str, int] = {}
    for r in rows:
        key = r["state"] or "running"
        counts[key] = counts.get(key, 0) + 1
    if n_slots > len(rows):
        counts["not run"] = n_slots - len(rows)
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "no trials"


def recent_studies(engine: Engine, spec: str | None = None, limit: int = 3) -> list[str]:
    """The newest searches (by their latest claim), newest first."""
    from sqlalchemy import func

    q = select(search_slots.c.study, func.max(search_slots.c.claimed_at).label("at")).group_by(search_slots.c.study)
    if spec is not None:
        q = q.where(search_slots.c.spec == spec)
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(q.order_by(func.max(search_slots.c.claimed_at).desc()).limit(limit))]
