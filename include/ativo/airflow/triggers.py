"""Triggers run by Airflow's triggerer (an installed package, never a DAG bundle, so the triggerer can import them).

:class:`BudgetTrigger` waits, without holding a worker or a pool slot, until a team's budget can cover a task:
the limit was raised, reservations ended, or the budget period reset.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


def budget_room(team: str, estimate_usd: float, priority: str, period: str) -> dict[str, Any] | None:
    """Why the task may try again now (room in the budget, or a new period), or None to keep waiting."""
    from ativo.compute.budget import Ledger, headroom, room_for
    from ativo.config import load_settings
    from ativo.store.db import get_engine

    settings = load_settings()
    status = Ledger(get_engine(settings.db_url), settings.prices).status(team)
    if status["period"] != period:
        return {"reason": f"budget period {period} ended; {status['period']} started", "status": status}
    if status["limit_usd"] is None:
        return {"reason": f"budget '{team}' has no limit any more", "status": status}
    limit, spent, reserved = float(status["limit_usd"]), float(status["settled_usd"]), float(status["reserved_usd"])
    erasure_reserve = float(status.get("erasure_reserve_usd") or 0.0)
    if room_for(
        limit=limit,
        spent=spent,
        reserved=reserved,
        erasure_reserve=erasure_reserve,
        estimate=estimate_usd,
        priority=priority,
    ):
        room = headroom(limit=limit, spent=spent, reserved=reserved, erasure_reserve=erasure_reserve, priority=priority)
        return {"reason": f"{room:.4f} USD available, {estimate_usd:.4f} needed", "status": status}
    return None


class BudgetTrigger(BaseTrigger):
    """Fires when ``team``'s budget can take a reservation of ``estimate_usd`` (polls the platform DB).

    Args:
        team: the budget's team.
        estimate_usd: what the deferred task needs.
        priority: its priority class (erasure work may also use the protected reserve).
        period: the period in which it was refused; a new period always fires.
        poll_s: seconds between checks.
    """

    def __init__(self, team: str, estimate_usd: float, priority: str, period: str, poll_s: float = 30.0) -> None:
        super().__init__()
        self.team, self.estimate_usd, self.priority, self.period, self.poll_s = (
            team,
            estimate_usd,
            priority,
            period,
            poll_s,
        )

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Class path and keyword arguments, to re-create the trigger in the triggerer."""
        return (
            "ativo.airflow.triggers.BudgetTrigger",
            {
                "team": self.team,
                "estimate_usd": self.estimate_usd,
                "priority": self.priority,
                "period": self.period,
                "poll_s": self.poll_s,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until there is room (the DB query runs in a thread; the triggerer's loop never blocks)."""
        while True:
            room = await asyncio.to_thread(budget_room, self.team, self.estimate_usd, self.priority, self.period)
            if room is not None:
                yield TriggerEvent({"reason": room["reason"], "team": self.team})
                return
            self.log.info(
                "budget '%s' still has no room for %.4f USD; next check in %ss",
                self.team,
                self.estimate_usd,
                self.poll_s,
            )
            await asyncio.sleep(self.poll_s)
