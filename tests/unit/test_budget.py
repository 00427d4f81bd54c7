"""Budgets: exactly what fits runs, the rest is refused clearly; settled cost = duration × price; alerts once."""

from __future__ import annotations

import datetime as dt

import pytest

from ativo.compute.budget import BudgetExceeded, Ledger, period_of
from ativo.store.db import get_engine
from tests.clock import FakeClock

PRICES = {"cpu": 0.36, "gpu": 3.6}  # 0.0001 USD per cpu-second
HOUR = dt.timedelta(hours=1)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def ledger(tmp_path, clock):
    return Ledger(get_engine(f"sqlite:///{tmp_path / 'p.db'}"), PRICES, clock=clock)


def reserve(ledger: Ledger, estimate: float, **kw) -> object:
    args = {
        "team": "risk",
        "spec": "adult_income",
        "task_key": "adult_income__train.trial",
        "resource": "cpu",
        "timeout": HOUR,
    } | kw
    return ledger.reserve(estimate_usd=estimate, **args)


@pytest.mark.parametrize("k", [0, 5, 16])
def test_budget_covering_k_trials_runs_exactly_k_of_16(ledger, clock, k):
    estimate = 0.30
    ledger.set_budget("risk", limit_usd=round(k * estimate, 6))
    ran, refused = 0, []
    for _ in range(16):
        try:
            r = reserve(ledger, estimate)
        except BudgetExceeded as err:
            refused.append(str(err))
            continue
        ledger.settle(r, seconds=3000)  # 3000 s × 0.0001 USD/s = 0.30 USD, exactly the estimate
        ran += 1
    assert ran == k and len(refused) == 16 - k
    if refused:
        _, resets = period_of(clock.now())
        msg = refused[0]
        assert f"budget 'risk' is spent: {k * estimate:.2f} of {k * estimate:.2f} USD" in msg
        assert "this task reserves up to 0.30 USD" in msg and f"wait for {resets.isoformat()}" in msg


def test_settled_total_is_duration_times_price(ledger):
    ledger.set_budget("risk", limit_usd=100)
    durations = [12.5, 340.0, 61.2, 3600.0, 0.8]
    for seconds in durations:
        ledger.settle(reserve(ledger, 0.5), seconds=seconds)
    expected = sum(durations) / 3600 * PRICES["cpu"]
    assert ledger.status("risk")["settled_usd"] == pytest.approx(expected, rel=0.01)
    gpu = reserve(ledger, 4.0, resource="gpu", slots=2)
    actual, _ = ledger.settle(gpu, seconds=1800)
    assert actual == pytest.approx(0.5 * 3.6 * 2)


def test_a_task_is_charged_at_most_what_it_reserved_so_the_limit_holds(ledger):
    ledger.set_budget("risk", limit_usd=1.0)
    first, second = reserve(ledger, 0.5), reserve(ledger, 0.5)  # admitted together: 1.0 of 1.0
    with pytest.raises(BudgetExceeded):
        reserve(ledger, 0.01)
    # on shared cores each ran 3.7 times as long as its reservation pays for before it stopped
    charged = [ledger.settle(r, seconds=3.7 * 5000)[0] for r in (first, second)]
    assert charged == [0.5, 0.5] and ledger.status("risk")["settled_usd"] == pytest.approx(1.0)
    assert ledger.status("risk")["used_pct"] == 100.0
    assert ledger.entry(first.id)["seconds"] == pytest.approx(18_500)  # the time it ran is kept


def test_failed_task_releases_and_killed_task_expires(ledger, clock):
    ledger.set_budget("risk", limit_usd=1.0)
    failed = reserve(ledger, 0.6)
    with pytest.raises(BudgetExceeded):
        reserve(ledger, 0.6)  # the first reservation still holds 0.6
    ledger.release(failed)
    dead = reserve(ledger, 0.6, timeout=dt.timedelta(seconds=1))  # its holder is "killed": nobody settles it
    clock.advance(0.5)
    assert ledger.status("risk")["reserved_usd"] == pytest.approx(0.6)  # within its timeout it still counts
    with pytest.raises(BudgetExceeded):
        reserve(ledger, 0.6)
    clock.advance(4.5)
    reserve(ledger, 0.6)  # after its timeout the dead reservation no longer counts
    assert ledger.status("risk")["reserved_usd"] == pytest.approx(0.6)
    assert ledger.entry(dead.id)["state"] == "expired" and ledger.renew(dead, dt.timedelta(hours=1)) is False
    later = clock.now() + dt.timedelta(hours=2)  # an explicit `now` still overrides the clock
    assert ledger.status("risk", now=later)["reserved_usd"] == 0


def test_thresholds_alert_once_per_period(ledger):
    ledger.set_budget("risk", limit_usd=1.0)
    crossed = [ledger.settle(reserve(ledger, s * 0.0001), seconds=s)[1] for s in (4000, 3000, 1000, 500, 1500)]
    # cumulative: 40 %, 70 %, 80 %, 85 % (still past 80: no second alert), 100 %
    assert crossed == [[], [50], [80], [], [100]]
    with pytest.raises(BudgetExceeded):
        reserve(ledger, 0.01)


def test_erasure_work_may_spend_the_protected_reserve(ledger):
    ledger.set_budget("risk", limit_usd=1.0, erasure_reserve_usd=0.4)
    reserve(ledger, 0.6)
    with pytest.raises(BudgetExceeded):
        reserve(ledger, 0.1)  # ordinary work stops at limit − reserve
    reserve(ledger, 0.4, priority="erasure", task_key="adult_income__erasure.retrain")


def test_the_reservation_comes_from_history_capped_by_timeout(ledger):
    key = "adult_income__train.trial"
    assert ledger.estimate(key, "cpu", 1, HOUR) == pytest.approx(0.36)  # no history: the timeout's worth
    for seconds in (100, 200, 300):
        ledger.settle(reserve(ledger, 0.1), seconds=seconds)
    # a bound it is stopped at: twice the most a recent run cost (room for a slower run on shared cores)
    assert ledger.estimate(key, "cpu", 1, HOUR) == pytest.approx(2 * 300 * 0.0001)
    assert ledger.estimate(key, "cpu", 1, dt.timedelta(seconds=50)) == pytest.approx(50 * 0.0001)


def test_bad_budget_input_is_refused_and_nothing_changes(ledger):
    ledger.set_budget("risk", limit_usd=5)
    bad = [
        ({"limit_usd": -1}, "must not be negative"),
        ({"limit_usd": 1, "erasure_reserve_usd": 2}, "above limit_usd"),
        ({"limit_usd": 1, "policy": "maybe"}, "policy must be one of"),
    ]
    for kwargs, match in bad:
        with pytest.raises(ValueError, match=match):
            ledger.set_budget("risk", **kwargs)
    assert ledger.status("risk")["limit_usd"] == 5
    with pytest.raises(ValueError, match="no price for resource 'tpu'"):
        reserve(ledger, 0.1, resource="tpu")


def test_the_reservation_follows_the_seconds_on_that_resource_at_todays_price(tmp_path, clock):
    engine = get_engine(f"sqlite:///{tmp_path / 'q.db'}")
    free = Ledger(engine, {"cpu": 0.0, "gpu": 3.6}, clock=clock)
    key = "adult_income__train.trial"
    for seconds in (100, 300):  # run while the CPU was free: their cost says nothing of the next run's
        reservation = free.reserve(team="t", spec="s", task_key=key, estimate_usd=0, resource="cpu", timeout=HOUR)
        free.settle(reservation, seconds)
    priced = Ledger(engine, PRICES, clock=clock)
    assert priced.estimate(key, "cpu", 1, HOUR) == pytest.approx(2 * 300 * 0.0001)  # not 0: seconds × today's price
    assert priced.estimate(key, "gpu", 1, HOUR) == pytest.approx(3.6)  # no GPU history: the timeout's worth


def test_daily_spend_sums_settled_cost_per_utc_day_and_fills_quiet_days(ledger, clock):
    start = clock.now()
    ledger.settle(reserve(ledger, 0.5), seconds=1000)  # 0.10 USD today
    ledger.settle(reserve(ledger, 0.5), seconds=500)  # 0.05 USD today
    ledger.release(reserve(ledger, 0.5))  # released: costs nothing
    reserve(ledger, 0.5)  # still reserved: not spent
    clock.advance(2 * 86400)
    ledger.settle(reserve(ledger, 0.5), seconds=2000)  # 0.20 USD two days later
    days = ledger.daily_spend("risk", days=4)
    today = clock.now().date()
    assert [d for d, _ in days] == [today - dt.timedelta(days=i) for i in (3, 2, 1, 0)]
    assert [round(usd, 6) for _, usd in days] == [0.0, 0.15, 0.0, 0.2]
    assert start.date() == today - dt.timedelta(days=2)
    assert ledger.daily_spend("nobody", days=2) == [(today - dt.timedelta(days=1), 0.0), (today, 0.0)]
