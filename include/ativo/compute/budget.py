"""Budgets and the spend ledger: reserve before running, settle after, release on failure.

A team has a monthly limit in USD and a protected reserve that only erasure work may spend, so a spent budget
never blocks a legal obligation. A task reserves a bound on its cost first (twice the most its last runs cost,
capped by its execution timeout); if that would pass the limit it is refused with a message naming the budget,
what is spent, the limit, the reservation and when the period resets. The reservation is a ceiling, not a guess:
the task is stopped when it has run for what it reserved (:meth:`ativo.compute.session.ComputeSession.exhausted`:
a trial is pruned there), and it settles at most what it reserved, so settled spend never passes the limit however
many processes reserve at once. A reservation lives as long as its holder renews it (a dead holder's expires); a
settled entry records the seconds run and their cost (seconds × price × slots, at most the reservation). Crossing
50/80/100 % of the limit is reported once per period.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from ativo.errors import AtivoError
from ativo.store.db import budget_alerts, budgets, lock, spend_ledger, utcnow

THRESHOLDS = (50, 80, 100)
POLICIES = ("fail", "defer")
MIN_RESERVATION_S = 1.0
"""The shortest a reservation pays for, whatever the history says (a run of no seconds reserves something)."""
HEADROOM = 2.0
"""A reservation is this many times the longest of the task's recent runs: room for a slower run on shared cores
(3.7 times the median was measured on 2 cores), and still a bound it is stopped at."""


def usd(amount: float | None) -> str:
    """An amount of USD with the precision its size needs: cents from a dollar up, four significant digits below.

    At least two decimals (``0.50``, ``0.0203``, ``0.000072``): two amounts a user compares never round alike.
    """
    if amount is None:
        return "n/a"
    if amount == 0 or abs(amount) >= 1:
        return f"{amount:,.2f}"
    decimals = max(2, 3 - math.floor(math.log10(abs(amount))))
    text = f"{amount:.{decimals}f}".rstrip("0")
    return text + "0" * (2 - len(text.split(".")[1]))


class BudgetExceeded(AtivoError):
    """A reservation would take a team past its limit."""

    def __init__(
        self,
        team: str,
        period: str,
        spent: float,
        reserved: float,
        limit: float,
        estimate: float,
        resets_on: dt.date,
        policy: str,
        *,
        asking: str = "this task reserves up to",
    ) -> None:
        self.team, self.period, self.spent, self.reserved = team, period, spent, reserved
        self.limit, self.estimate, self.resets_on, self.policy = limit, estimate, resets_on, policy
        running = f", {usd(reserved)} reserved by running tasks" if reserved else ""
        super().__init__(
            f"budget '{team}' is spent: {usd(spent)} of {usd(limit)} USD this month ({period}){running}; "
            f"{asking} {usd(estimate)} USD; raise the limit (ativo budget set {team} --limit-usd …) "
            f"or wait for {resets_on.isoformat()}"
        )


@dataclass(frozen=True)
class Reservation:
    """A ledger entry held while a task runs."""

    id: int
    team: str
    estimate_usd: float
    period: str


def headroom(*, limit: float, spent: float, reserved: float, erasure_reserve: float, priority: str) -> float:
    """USD a task of ``priority`` may still reserve this period.

    The limit less settled spend and live reservations, and less the protected erasure reserve unless the task is
    erasure work (the reserve is for it alone).

    Args:
        limit: the period's limit.
        spent: settled spend this period.
        reserved: live reservations this period (not counting the task asking).
        erasure_reserve: the part of the limit only ``priority="erasure"`` may use.
        priority: the asking task's priority class.
    """
    usable = limit - (0.0 if priority == "erasure" else erasure_reserve)
    return usable - spent - reserved


def room_for(
    *, limit: float, spent: float, reserved: float, erasure_reserve: float, estimate: float, priority: str
) -> bool:
    """The admission rule: whether a reservation of ``estimate`` fits the budget (see :func:`headroom`).

    The one rule :meth:`Ledger.reserve` applies and the budget trigger waits on; exactly reaching the limit fits
    (within 1e-9 USD of rounding).
    """
    room = headroom(limit=limit, spent=spent, reserved=reserved, erasure_reserve=erasure_reserve, priority=priority)
    return estimate <= room + 1e-9


def period_of(now: dt.datetime) -> tuple[str, dt.date]:
    """The budget period (calendar month, UTC) of ``now`` and the day it resets."""
    first = now.date().replace(day=1)
    resets = (first + dt.timedelta(days=32)).replace(day=1)
    return first.strftime("%Y-%m"), resets


@dataclass(frozen=True)
class SettledSpend:
    """Settled spend of one team on one spec in one period (and one resource, when asked by resource)."""

    team: str
    spec: str
    period: str
    resource: str | None
    usd: float
    seconds: float
    tasks: int


@dataclass(frozen=True)
class BudgetAlert:
    """A threshold (50, 80 or 100 % of the limit) a team's spend crossed in a period, reported once."""

    team: str
    period: str
    threshold: int
    sent_at: dt.datetime


class Ledger:
    """Budgets, reservations and settlements in the platform DB.

    Args:
        engine: the platform DB.
        prices: USD per slot-hour for each resource kind.
        clock: the current time (aware UTC) that periods, reservation expiry and every recorded timestamp go by;
            a test passes a fake one.
    """

    def __init__(
        self, engine: Engine, prices: Mapping[str, float], *, clock: Callable[[], dt.datetime] = utcnow
    ) -> None:
        self.engine = engine
        self.prices = dict(prices)
        self.clock = clock

    def price(self, resource: str) -> float:
        """USD per slot-hour of ``resource``."""
        if resource not in self.prices:
            raise ValueError(
                f"no price for resource {resource!r}; set it in ATIVO_PRICES (known: {sorted(self.prices)})"
            )
        return self.prices[resource]

    def set_budget(self, team: str, limit_usd: float, erasure_reserve_usd: float = 0.0, policy: str = "fail") -> None:
        """Create or change a team's monthly budget.

        Raises:
            ValueError: a negative amount, a reserve above the limit, or an unknown policy.
        """
        if limit_usd < 0 or erasure_reserve_usd < 0:
            raise ValueError("limit_usd and erasure_reserve_usd must not be negative")
        if erasure_reserve_usd > limit_usd:
            raise ValueError(f"erasure_reserve_usd {erasure_reserve_usd} is above limit_usd {limit_usd}")
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}, not {policy!r}")
        row = {
            "limit_usd": limit_usd,
            "erasure_reserve_usd": erasure_reserve_usd,
            "policy": policy,
            "updated_at": self.clock(),
        }
        with self.engine.begin() as conn:
            lock(conn, f"budget/{team}")
            if conn.execute(update(budgets).where(budgets.c.team == team).values(**row)).rowcount == 0:
                conn.execute(insert(budgets).values(team=team, **row))

    def _budget(self, conn: Any, team: str) -> dict[str, Any] | None:
        row = conn.execute(select(budgets).where(budgets.c.team == team)).mappings().first()
        return dict(row) if row else None

    def _totals(self, conn: Any, team: str, period: str, now: dt.datetime) -> tuple[float, float]:
        settled = conn.execute(
            select(func.coalesce(func.sum(spend_ledger.c.actual_usd), 0.0)).where(
                spend_ledger.c.team == team, spend_ledger.c.period == period, spend_ledger.c.state == "settled"
            )
        ).scalar_one()
        reserved = conn.execute(
            select(func.coalesce(func.sum(spend_ledger.c.estimate_usd), 0.0)).where(
                spend_ledger.c.team == team,
                spend_ledger.c.period == period,
                spend_ledger.c.state == "reserved",
                spend_ledger.c.expires_at > now,
            )
        ).scalar_one()
        return float(settled), float(reserved)

    def teams(self) -> list[str]:
        """Every team with a budget or any spend, sorted."""
        with self.engine.connect() as conn:
            with_budget = set(conn.execute(select(budgets.c.team)).scalars())
            with_spend = set(conn.execute(select(spend_ledger.c.team).distinct()).scalars())
        return sorted(with_budget | with_spend)

    def settled_spend(self, *, by_resource: bool = False) -> list[SettledSpend]:
        """Settled spend of every period, per team, spec and period (and resource when ``by_resource``)."""
        keys = [spend_ledger.c.team, spend_ledger.c.spec, spend_ledger.c.period]
        if by_resource:
            keys.append(spend_ledger.c.resource)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    *keys,
                    func.sum(spend_ledger.c.actual_usd),
                    func.sum(spend_ledger.c.seconds),
                    func.count(),
                )
                .where(spend_ledger.c.state == "settled")
                .group_by(*keys)
            ).all()
        return [
            SettledSpend(
                team=r[0],
                spec=r[1],
                period=r[2],
                resource=r[3] if by_resource else None,
                usd=float(r[-3] or 0.0),
                seconds=float(r[-2] or 0.0),
                tasks=int(r[-1]),
            )
            for r in rows
        ]

    def alerts(self) -> list[BudgetAlert]:
        """Every threshold alert sent, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(budget_alerts).order_by(budget_alerts.c.sent_at)).mappings()
            return [BudgetAlert(**r) for r in rows]

    def daily_spend(self, team: str, days: int = 14, now: dt.datetime | None = None) -> list[tuple[dt.date, float]]:
        """Settled USD of ``team`` per UTC day over the last ``days`` days, oldest first (0.0 on a quiet day)."""
        now = now or self.clock()
        first = now.astimezone(dt.UTC).date() - dt.timedelta(days=days - 1)
        start = dt.datetime.combine(first, dt.time(), tzinfo=dt.UTC)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(spend_ledger.c.settled_at, spend_ledger.c.actual_usd).where(
                    spend_ledger.c.team == team, spend_ledger.c.state == "settled", spend_ledger.c.settled_at >= start
                )
            ).all()
        per_day = {first + dt.timedelta(days=i): 0.0 for i in range(days)}
        for at, usd in rows:  # grouped here: SQLite and PostgreSQL name the date of an instant differently
            day = (at if at.tzinfo else at.replace(tzinfo=dt.UTC)).astimezone(dt.UTC).date()
            if day in per_day:
                per_day[day] += float(usd or 0.0)
        return sorted(per_day.items())

    def status(self, team: str, now: dt.datetime | None = None) -> dict[str, Any]:
        """Limit, settled spend, live reservations and what is left this period."""
        now = now or self.clock()
        period, resets = period_of(now)
        with self.engine.connect() as conn:
            budget = self._budget(conn, team)
            settled, reserved = self._totals(conn, team, period, now)
        out: dict[str, Any] = {
            "team": team,
            "period": period,
            "resets_on": resets.isoformat(),
            "settled_usd": round(settled, 6),
            "reserved_usd": round(reserved, 6),
        }
        if budget is None:
            out.update(limit_usd=None, available_usd=None, used_pct=None, policy="unlimited")
        else:
            limit = budget["limit_usd"]
            out.update(
                limit_usd=limit,
                erasure_reserve_usd=budget["erasure_reserve_usd"],
                policy=budget["policy"],
                available_usd=round(limit - settled - reserved, 6),
                used_pct=round(100 * settled / limit, 2) if limit else 100.0,
            )
        return out

    def estimate(self, task_key: str, resource: str, slots: int, timeout: dt.timedelta, history: int = 5) -> float:
        """What a task reserves: :data:`HEADROOM` times its longest recent run, at today's price, capped by its timeout.

        The runs are its last settled ones on ``resource``. A bound, not a guess: the task is stopped when it has run
        that long, and settles at most that. Seconds, not USD, are the history (a price changed since, or runs on
        another resource, say nothing of the next run's cost); at least :data:`MIN_RESERVATION_S`. With no history,
        the whole execution timeout.
        """
        per_second = self.price(resource) * slots / 3600
        cap = timeout.total_seconds() * per_second
        with self.engine.connect() as conn:
            recent = (
                conn.execute(
                    select(spend_ledger.c.seconds)
                    .where(
                        spend_ledger.c.task_key == task_key,
                        spend_ledger.c.resource == resource,
                        spend_ledger.c.state == "settled",
                        spend_ledger.c.seconds.is_not(None),
                    )
                    .order_by(spend_ledger.c.id.desc())
                    .limit(history)
                )
                .scalars()
                .all()
            )
        if not recent:
            return cap
        return min(max(HEADROOM * max(float(s) for s in recent), MIN_RESERVATION_S) * per_second, cap)

    def reserve(
        self,
        *,
        team: str,
        spec: str,
        task_key: str,
        estimate_usd: float,
        resource: str,
        slots: int = 1,
        priority: str = "normal",
        timeout: dt.timedelta,
        now: dt.datetime | None = None,
    ) -> Reservation:
        """Hold ``estimate_usd`` of the team's budget for a task that is about to run.

        The reservation is inserted first and the totals checked inside the same transaction, so concurrent
        reservations serialise (SQLite's single writer, a PostgreSQL advisory lock) and never overshoot.

        Raises:
            BudgetExceeded: the reservation would pass the limit (erasure work may also spend the reserve).
        """
        now = now or self.clock()
        period, resets = period_of(now)
        self.price(resource)
        self.expire_stale(now)
        with self.engine.begin() as conn:
            lock(conn, f"budget/{team}")
            inserted = conn.execute(
                insert(spend_ledger).values(
                    team=team,
                    spec=spec,
                    task_key=task_key,
                    resource=resource,
                    slots=slots,
                    priority=priority,
                    period=period,
                    state="reserved",
                    estimate_usd=estimate_usd,
                    created_at=now,
                    expires_at=now + timeout,
                )
            )
            assert inserted.inserted_primary_key is not None
            rid = inserted.inserted_primary_key[0]
            budget = self._budget(conn, team)
            if budget is not None:
                settled, reserved = self._totals(conn, team, period, now)  # reserved: this estimate included
                if not room_for(
                    limit=budget["limit_usd"],
                    spent=settled,
                    reserved=reserved - estimate_usd,
                    erasure_reserve=budget["erasure_reserve_usd"],
                    estimate=estimate_usd,
                    priority=priority,
                ):
                    conn.execute(delete(spend_ledger).where(spend_ledger.c.id == rid))
                    raise BudgetExceeded(
                        team,
                        period,
                        settled,
                        reserved - estimate_usd,
                        budget["limit_usd"],
                        estimate_usd,
                        resets,
                        budget["policy"],
                    )
        return Reservation(id=int(rid), team=team, estimate_usd=estimate_usd, period=period)

    def settle(self, reservation: Reservation, seconds: float) -> tuple[float, list[int]]:
        """Record the cost of a finished task: what its seconds cost, at most what it reserved.

        Returns:
            (USD charged, thresholds in % newly crossed this period — each is returned once per period).
        """
        now = self.clock()
        with self.engine.begin() as conn:
            lock(conn, f"budget/{reservation.team}")
            row = conn.execute(select(spend_ledger).where(spend_ledger.c.id == reservation.id)).mappings().one()
            ran = seconds / 3600 * self.price(row["resource"]) * row["slots"]
            actual = min(ran, float(row["estimate_usd"]))  # the reservation admitted it: the limit holds
            conn.execute(
                update(spend_ledger)
                .where(spend_ledger.c.id == reservation.id)
                .values(state="settled", actual_usd=actual, seconds=seconds, settled_at=now)
            )
            budget = self._budget(conn, reservation.team)
            settled, _ = self._totals(conn, reservation.team, row["period"], now)
        crossed: list[int] = []
        if budget and budget["limit_usd"] > 0:
            used = 100 * settled / budget["limit_usd"]
            for threshold in THRESHOLDS:
                if used + 1e-9 >= threshold and self._mark_alert(reservation.team, row["period"], threshold):
                    crossed.append(threshold)
        return actual, crossed

    def _mark_alert(self, team: str, period: str, threshold: int) -> bool:
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(budget_alerts).values(team=team, period=period, threshold=threshold, sent_at=self.clock())
                )
        except IntegrityError:
            return False  # already reported this period
        return True

    def renew(self, reservation: Reservation, ttl: dt.timedelta) -> bool:
        """Keep a live reservation from expiring for another ``ttl``; False if it already expired or ended."""
        now = self.clock()
        with self.engine.begin() as conn:
            n = conn.execute(
                update(spend_ledger)
                .where(
                    spend_ledger.c.id == reservation.id,
                    spend_ledger.c.state == "reserved",
                    spend_ledger.c.expires_at > now,
                )
                .values(expires_at=now + ttl)
            ).rowcount
        return bool(n)

    def expire_stale(self, now: dt.datetime | None = None) -> int:
        """Mark reservations whose holder stopped renewing them (crashed, SIGKILLed) as expired; returns how many.

        Expired reservations already count for nothing; this makes the ledger say so.
        """
        now = now or self.clock()
        with self.engine.begin() as conn:
            return int(
                conn.execute(
                    update(spend_ledger)
                    .where(spend_ledger.c.state == "reserved", spend_ledger.c.expires_at <= now)
                    .values(state="expired", settled_at=now)
                ).rowcount
            )

    def entry(self, reservation_id: int) -> dict[str, Any]:
        """One ledger row, as a dict."""
        with self.engine.connect() as conn:
            return dict(conn.execute(select(spend_ledger).where(spend_ledger.c.id == reservation_id)).mappings().one())

    def release(self, reservation: Reservation) -> None:
        """Free a reservation whose task failed or was cancelled (nothing is charged)."""
        with self.engine.begin() as conn:
            conn.execute(
                update(spend_ledger)
                .where(spend_ledger.c.id == reservation.id, spend_ledger.c.state == "reserved")
                .values(state="released", settled_at=self.clock())
            )
