"""Reservations from many processes at once against one platform DB never pass the budget."""

from __future__ import annotations

import datetime as dt

from ativo.compute.budget import BudgetExceeded, Ledger
from ativo.store.db import get_engine
from tests.support import processes

PRICES = {"cpu": 0.36, "gpu": 3.6}
HOUR = dt.timedelta(hours=1)


def _try_reserve(url: str) -> bool:
    try:
        Ledger(get_engine(url), PRICES).reserve(
            team="risk", spec="s", task_key="t", estimate_usd=0.1, resource="cpu", timeout=HOUR
        )
    except BudgetExceeded:
        return False
    return True


def test_concurrent_reservations_never_overshoot(tmp_path):
    url = f"sqlite:///{tmp_path / 'p.db'}"
    Ledger(get_engine(url), PRICES).set_budget("risk", limit_usd=0.5)
    with processes.context().Pool(4) as pool:
        results = pool.map(_try_reserve, [url] * 12)
    assert sum(results) == 5
