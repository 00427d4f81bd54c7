"""Whether a judged window retrains the model: sustained, outside the cooldown, within budget.

Every monitoring run is recorded (``monitor_runs``: the window, what it showed, what was decided and why). A drifted
window becomes a **drift episode** (``drift_episodes``, announced on the ``<spec>.drift`` Asset) only when:

- it is **sustained**: this window and the ``monitor.sustain − 1`` judged windows before it, of the same served
  version, all drifted (a window too small to judge neither confirms nor breaks the streak);
- it is **outside the cooldown**: this window ends at least ``monitor.cooldown_hours`` after the window of the spec's
  last episode ended (data time, so scheduling delays do not move it);
- it is **within budget**: the spec's team can pay for the search a retraining runs.

Otherwise the run says why not ("in cooldown until …", "budget 'risk' is spent: …"). A held-back drift pages on-call
when nothing else will act on it: a spent budget when it starts holding retraining back (no retraining is coming;
the windows after it are recorded without paging again), a cooldown only when the model itself degrades (its
accuracy, estimated or realised, or its fairness) and the last retraining has ended with the same version still
served: it did not fix it.

An announced episode (:mod:`ativo.store.episodes`) belongs to the training-run ledger (:mod:`ativo.train.runs`): the
training run that takes it claims it, so one episode retrains once, also when its Asset event is merged with others
or lost (the reconciler triggers a run for an unclaimed one); one whose retraining failed is taken again up to
``MAX_ATTEMPTS`` times, then given up and on-call is paged with the last run's outcome (``ativo monitor status`` lists
the open episodes only, with their failed attempts; a given-up one is no longer among them).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, delete, desc, func, insert, select

from ativo.spec import ModelSpec
from ativo.store import episodes
from ativo.store.db import monitor_runs, session_lock, utcnow

if TYPE_CHECKING:
    from ativo.config import Settings
    from ativo.monitor.window import Assessment

DEGRADATION = ("AUC on ", "estimated AUC", "fairness:")
"""Reasons that say the model itself got worse (not only its inputs)."""


@dataclass(frozen=True)
class Decision:
    """What a monitoring run decided about its window."""

    action: str  # not_judged | no_drift | waiting | held_cooldown | held_budget | emitted
    reason: str
    streak: int = 0
    episode: int | None = None
    page: bool = False

    @property
    def emit(self) -> bool:
        """Whether the run announces a drift episode."""
        return self.action == "emitted"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {**asdict(self), "emit": self.emit}


def degraded(reasons: list[str]) -> bool:
    """Whether any reason says the model's accuracy or fairness got worse."""
    return any(r.startswith(DEGRADATION) for r in reasons)


def _as_utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _streak(conn: Any, spec: str, version: str, before: dt.datetime) -> int:
    """Judged drifted windows of ``version`` in a row, ending before ``before`` (unjudged ones skipped)."""
    rows = conn.execute(
        select(monitor_runs.c.version, monitor_runs.c.judged, monitor_runs.c.drifted)
        .where(monitor_runs.c.spec == spec, monitor_runs.c.window_end <= before)
        .order_by(desc(monitor_runs.c.window_end))
        .limit(500)
    ).all()
    n = 0
    for v, judged, drifted in rows:
        if not judged:
            continue
        if v != version or not drifted:
            break
        n += 1
    return n


def figures_of(assessment: Assessment) -> dict[str, Any]:
    """The window's figures that its gauges show (JSON-able, NaN as None)."""
    import math

    def num(v: Any) -> float | None:
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)

    perf = assessment.performance
    return {
        "rows": assessment.rows,
        "psi": {d.name: num(d.psi) for d in assessment.drift},
        "p_value": {d.name: num(d.p_value) for d in assessment.drift},
        "drifted": [d.name for d in assessment.drift if d.drifted],
        **{k: num(perf.get(k)) for k in ("estimated_auc", "estimated_auc_std", "auc", "reference_auc")},
        "labelled_rows": perf.get("labelled_rows", 0),
        "fairness": {f"{f['attribute']}:{f['metric']}": num(f["difference"]) for f in assessment.fairness},
    }


def decide(
    engine: Engine,
    spec: ModelSpec,
    assessment: Assessment,
    *,
    window_start: dt.datetime,
    window_end: dt.datetime,
    report_uri: str | None,
    budget_problem: str | None = None,
    dag_run_id: str | None = None,
    now: dt.datetime | None = None,
) -> Decision:
    """Decide on a judged window and record the run (see the module doc); a re-run of a window replaces its record.

    Args:
        engine: the platform DB.
        spec: the spec (its ``monitor`` section).
        assessment: :func:`ativo.monitor.window.assess` of the window.
        window_start: the window's start (inclusive).
        window_end: the window's end (exclusive).
        report_uri: where its report is.
        budget_problem: why the spec's team cannot pay for a retraining (None: it can); see
            :func:`retraining_budget`.
        dag_run_id: the monitoring run.
        now: when the decision is made (recorded; the cooldown is measured in data time, from window ends).
    """
    now = now or utcnow()
    cfg = spec.monitor
    # the lock the ledger takes to claim episodes: no claim between the cooldown read and a new episode
    with session_lock(engine, episodes.lock_name(spec.name)), engine.begin() as conn:
        streak = 0
        episode = None
        same = conn.execute(
            select(monitor_runs.c.episode_id).where(
                monitor_runs.c.spec == spec.name,
                monitor_runs.c.window_start == window_start,
                monitor_runs.c.window_end == window_end,
            )
        ).scalar()
        previous = conn.execute(
            select(monitor_runs.c.decision)
            .where(monitor_runs.c.spec == spec.name, monitor_runs.c.window_end < window_end)
            .order_by(desc(monitor_runs.c.window_end))
            .limit(1)
        ).scalar()
        if not assessment.judged:
            decision = Decision("not_judged", assessment.reasons[0] if assessment.reasons else "not judged")
        elif not assessment.drifted:
            decision = Decision("no_drift", "no drift that matters beyond noise in this window")
        elif same is not None and assessment.drifted:
            # a retry of a run that announced this window's episode: the same episode, announced again (the train
            # DAG claims episodes, so a second event retrains nothing twice)
            streak, episode = 1 + _streak(conn, spec.name, assessment.version, window_start), int(same)
            decision = Decision(
                "emitted",
                f"drift sustained: episode {episode} announced for retraining (this window's, judged again)",
                streak,
                episode,
            )
        else:
            streak = 1 + _streak(conn, spec.name, assessment.version, window_start)
            last = episodes.latest_window(conn, spec.name)
            # the cooldown runs in data time: from the end of the last episode's window to this one's end, so a
            # daily window and a 24-hour cooldown do not depend on seconds of scheduling delay
            until = _as_utc(last["window_end"]) + dt.timedelta(hours=cfg.cooldown_hours) if last else None
            if streak < cfg.sustain:
                decision = Decision(
                    "waiting",
                    f"drift in {streak} of the {cfg.sustain} consecutive windows "
                    "monitor.sustain asks for: not retrained yet",
                    streak,
                )
            elif last is not None and until is not None and window_end < until:
                worse = degraded(assessment.reasons)
                if last["outcome"] is not None:
                    taken = f"its retraining {last['dag_run_id']} ended: {last['outcome']}"
                elif last["dag_run_id"]:
                    taken = f"run {last['dag_run_id']} is retraining"
                else:
                    taken = "no training run took it yet"
                # a person is needed only when the retraining ended and the same version still degrades
                page = worse and last["outcome"] is not None and last["version"] == assessment.version
                decision = Decision(
                    "held_cooldown",
                    f"in cooldown until {until.isoformat(timespec='minutes')} "
                    f"(episode {last['id']}: {taken}; monitor.cooldown_hours = "
                    f"{cfg.cooldown_hours})" + (": the model still degrades" if worse else ""),
                    streak,
                    page=page,
                )
            elif budget_problem:
                # paged when it starts; the next windows held for the same reason record it without paging again
                decision = Decision("held_budget", budget_problem, streak, page=previous != "held_budget")
            else:
                episode = episodes.announce(
                    conn,
                    spec=spec.name,
                    version=assessment.version,
                    window_start=window_start,
                    window_end=window_end,
                    reasons=assessment.reasons,
                    report_uri=report_uri,
                    emitted_at=now,
                )
                decision = Decision(
                    "emitted",
                    f"drift sustained over {streak} window(s): episode {episode} announced for retraining",
                    streak,
                    episode,
                )
        conn.execute(
            delete(monitor_runs).where(
                monitor_runs.c.spec == spec.name,
                monitor_runs.c.window_start == window_start,
                monitor_runs.c.window_end == window_end,
            )
        )
        conn.execute(
            insert(monitor_runs).values(
                spec=spec.name,
                version=assessment.version or None,
                window_start=window_start,
                window_end=window_end,
                rows=assessment.rows,
                judged=int(assessment.judged),
                drifted=int(assessment.drifted),
                reasons=assessment.reasons,
                report_uri=report_uri,
                figures=figures_of(assessment),
                decision=decision.action,
                decision_reason=decision.reason,
                episode_id=episode,
                dag_run_id=dag_run_id,
                created_at=now,
            )
        )
    return decision


def retraining_budget(spec: ModelSpec, settings: Settings) -> str | None:
    """Why the spec's team cannot pay for the search a retraining runs now (None: it can).

    What it needs is the spec's ``n_trials`` times what a trial reserves (:meth:`ativo.compute.budget.Ledger.estimate`),
    against the team's headroom (:func:`ativo.compute.budget.room_for`).
    """
    from ativo.compute.budget import BudgetExceeded, Ledger, period_of, room_for
    from ativo.store.db import get_engine

    ledger = Ledger(get_engine(settings.db_url), settings.prices)
    team = spec.compute.team
    status = ledger.status(team)
    if status["limit_usd"] is None:
        return None
    resource = "gpu" if spec.compute.device == "cuda" else "cpu"
    trial = ledger.estimate(
        f"{spec.name}.trial",
        resource,
        spec.compute.pool_slots,
        dt.timedelta(minutes=spec.compute.execution_timeout_minutes),
    )
    need = trial * spec.model.search.n_trials
    if room_for(
        limit=status["limit_usd"],
        spent=status["settled_usd"],
        reserved=status["reserved_usd"],
        erasure_reserve=status.get("erasure_reserve_usd") or 0.0,
        estimate=need,
        priority=spec.compute.priority,
    ):
        return None
    period, resets = period_of(utcnow())
    return str(
        BudgetExceeded(
            team,
            period,
            status["settled_usd"],
            status["reserved_usd"],
            status["limit_usd"],
            need,
            resets,
            status["policy"],
            asking=f"a retraining of {spec.model.search.n_trials} trials reserves up to",
        )
    )


def history(engine: Engine, spec: str, limit: int = 50) -> list[dict[str, Any]]:
    """The spec's latest monitoring runs, newest first."""
    with engine.connect() as conn:
        rows = (
            conn.execute(
                select(monitor_runs)
                .where(monitor_runs.c.spec == spec)
                .order_by(desc(monitor_runs.c.window_end))
                .limit(limit)
            )
            .mappings()
            .all()
        )
    return [dict(r) for r in rows]


def latest_runs(engine: Engine) -> list[dict[str, Any]]:
    """Every spec's latest monitoring run (the one whose window ended last); what the monitor's gauges show."""
    with engine.connect() as conn:
        latest = (
            select(monitor_runs.c.spec, func.max(monitor_runs.c.window_end).label("end"))
            .group_by(monitor_runs.c.spec)
            .subquery()
        )
        rows = (
            conn.execute(
                select(monitor_runs).join(
                    latest, (monitor_runs.c.spec == latest.c.spec) & (monitor_runs.c.window_end == latest.c.end)
                )
            )
            .mappings()
            .all()
        )
    return [dict(r) for r in rows]
