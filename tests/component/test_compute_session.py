"""The compute session: placement (GPU lease or CPU fallback), reservation, settlement, release, expiry.

Durations, heartbeats and expiry run on a fake clock that the tests advance; only the SIGKILL test has a real holder
process (with a real heartbeat), and the surviving side jumps its own clock past the holder's ttl.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import time

import pytest

from ativo.compute.budget import BudgetExceeded, Ledger
from ativo.compute.leases import LeaseManager, NoDeviceAvailable
from ativo.compute.session import ComputeSession
from ativo.config import load_settings
from ativo.store.db import get_engine, utcnow
from ativo.waiting import wait_until
from tests.clock import FakeClock
from tests.support import processes

PRICES = '{"cpu": 36.0, "gpu": 360.0}'  # 0.01 USD per cpu-second, 0.1 USD per gpu-second
HOLDER_BEAT = dt.timedelta(seconds=0.5)  # the real heartbeat of the holder that is SIGKILLed
HOLDER_TTL = 3 * HOLDER_BEAT  # ComputeSession's ttl: three missed beats


@pytest.fixture
def env(ativo_home, monkeypatch):
    monkeypatch.setenv("ATIVO_PRICES", PRICES)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    settings = load_settings()
    return settings, Ledger(get_engine(settings.db_url), settings.prices)


def with_compute(spec, **changes):
    return spec.model_copy(update={"compute": spec.compute.model_copy(update=changes)})


def test_cpu_work_is_settled_at_duration_times_price_times_slots(env, spec):
    settings, ledger = env
    spec2 = with_compute(spec, pool_slots=2, team="t1")
    clock = FakeClock()
    with ComputeSession(spec2, settings, task_key="k", holder="h1", clock=clock) as cs:
        assert cs.placement.device == "cpu" and cs.placement.threads == 2
        assert ledger.status("t1")["reserved_usd"] > 0  # held while it runs
        clock.advance(30)
    assert cs.outcome.seconds == 30
    assert cs.outcome.cost_usd == pytest.approx(30 / 3600 * 36.0 * 2, rel=1e-9)  # 30 s × 0.01 USD/s × 2 slots
    assert ledger.entry(cs.reservation.id)["seconds"] == 30
    status = ledger.status("t1")
    assert status["settled_usd"] == pytest.approx(cs.outcome.cost_usd, abs=1e-6) and status["reserved_usd"] == 0


def test_failed_work_releases_its_reservation_and_charges_nothing(env, spec):
    settings, ledger = env
    spec2 = with_compute(spec, team="t2")
    with pytest.raises(RuntimeError, match="boom"):
        with ComputeSession(spec2, settings, task_key="k", holder="h1") as cs:
            raise RuntimeError("boom")
    assert ledger.entry(cs.reservation.id)["state"] == "released"
    assert ledger.status("t2")["settled_usd"] == 0 and ledger.status("t2")["reserved_usd"] == 0


def test_refused_reservation_names_the_budget_and_leaves_no_lease(env, spec):
    settings, ledger = env
    spec2 = with_compute(spec, device="cuda", team="t3", execution_timeout_minutes=1)
    ledger.set_budget("t3", limit_usd=0.5)  # below the first estimate: 1 min × 0.1 USD/s = 6 USD
    with pytest.raises(BudgetExceeded) as err:
        ComputeSession(spec2, settings, task_key="k", holder="h1", devices=1).__enter__()
    msg = str(err.value)
    assert "budget 't3'" in msg and "0.00 of 0.50 USD" in msg and "reserves up to 6.00 USD" in msg
    assert "ativo budget set t3" in msg and err.value.resets_on.day == 1
    assert LeaseManager(get_engine(settings.db_url), devices=1).list() == []  # the GPU went back at once


def test_gpu_spec_leases_a_device_and_exports_it(env, spec):
    settings, ledger = env
    spec2 = with_compute(spec, device="cuda", team="t4")
    engine = get_engine(settings.db_url)
    clock = FakeClock()
    with ComputeSession(spec2, settings, task_key="k", holder="a", devices=2, clock=clock) as a:
        clock.advance(5)
        with ComputeSession(spec2, settings, task_key="k", holder="b", devices=2, clock=clock) as b:
            clock.advance(10)
            assert {a.placement.lease.device, b.placement.lease.device} == {0, 1}
            assert a.placement.device == b.placement.device == "cuda" and a.placement.resource == "gpu"
            assert os.environ["CUDA_VISIBLE_DEVICES"] == str(b.placement.lease.device)
            assert len(LeaseManager(engine, devices=2).list()) == 2
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    assert LeaseManager(engine, devices=2).list() == []
    assert ledger.status("t4")["settled_usd"] == pytest.approx(a.outcome.cost_usd + b.outcome.cost_usd, abs=1e-6)
    assert (a.outcome.seconds, b.outcome.seconds) == (15, 10)
    assert a.outcome.cost_usd == pytest.approx(15 * 0.1, rel=1e-9)  # billed as one GPU: 0.1 USD/s
    assert b.outcome.cost_usd == pytest.approx(10 * 0.1, rel=1e-9)


def test_heartbeat_renews_the_lease_and_reservation_past_their_ttl(env, spec):
    settings, _ = env
    spec2 = with_compute(spec, device="cuda", team="t8")
    clock = FakeClock()
    engine = get_engine(settings.db_url)
    leases = LeaseManager(engine, devices=1, clock=clock)
    ledger = Ledger(engine, settings.prices, clock=clock)
    beat = dt.timedelta(seconds=20)  # ttl 60 s; the real heartbeat thread never fires within this test
    with ComputeSession(spec2, settings, task_key="k", holder="a", devices=1, heartbeat=beat, clock=clock) as cs:
        assert cs.ttl == 3 * beat
        clock.advance(50)
        assert cs.beat() is True
        clock.advance(50)  # 100 s since the start: past the first ttl, inside the renewed one
        assert [(r["holder"], r["expired"]) for r in leases.list()] == [("a", False)]
        assert ledger.status("t8")["reserved_usd"] > 0
        assert leases.try_acquire("b") is None
        clock.advance(61)  # three beats missed: both lapse
        assert leases.list()[0]["expired"] and ledger.status("t8")["reserved_usd"] == 0
        assert cs.beat() is False  # the reservation cannot be revived
    assert cs.outcome.seconds == 161 and leases.list() == []


def test_no_gpu_on_the_host_follows_the_spec_fallback(env, spec):
    settings, _ = env
    cpu_ok = with_compute(spec, device="cuda", gpu_fallback="cpu", team="t5")
    with ComputeSession(cpu_ok, settings, task_key="k", holder="h", devices=0) as cs:
        assert cs.placement.device == "cpu" and cs.placement.resource == "cpu"
        assert "has no GPU" in cs.placement.note and "gpu_fallback: cpu" in cs.placement.note
    strict = with_compute(spec, device="cuda", gpu_fallback="fail", team="t5")
    with pytest.raises(NoDeviceAvailable, match=r"spec 'adult_income' needs a GPU \(compute.gpu_fallback: fail\)"):
        ComputeSession(strict, settings, task_key="k", holder="h", devices=0).__enter__()


def test_thresholds_alert_once_per_period(env, spec):
    settings, ledger = env
    spec2 = with_compute(spec, team="t6", execution_timeout_minutes=1)  # estimate: 60 s × 0.01 USD/s = 0.60 USD
    ledger.set_budget("t6", limit_usd=2.0)
    alerts: list[list[int]] = []

    def run(seconds: float) -> None:
        cs = ComputeSession(spec2, settings, task_key="k", holder="h", on_alert=lambda t, c, s: alerts.append(c))
        cs.__enter__()
        cs.started_at -= dt.timedelta(seconds=seconds)  # as if it had run that long
        cs.__exit__(None, None, None)

    run(60)  # 0.60 USD, 30 %
    run(60)  # 1.20 USD, 60 %: crosses 50
    run(90)  # ran past its reservation: charged the 0.60 USD it reserved, not 0.90; 1.80 USD, 90 %: crosses 80
    assert ledger.status("t6")["settled_usd"] == pytest.approx(1.80)
    with pytest.raises(BudgetExceeded):
        run(60)  # another 0.60 would pass the limit: never admitted
    ledger.set_budget("t6", limit_usd=3.0)
    run(6)  # 1.86 of 3.00 USD (62 %): nothing new this period
    assert alerts == [[50], [80]] and ledger.status("t6")["used_pct"] < 100


def test_the_session_says_when_its_reservation_is_spent(env, spec):
    from ativo.compute.session import current

    settings, _ = env
    spec2 = with_compute(spec, team="t9", execution_timeout_minutes=1)  # reserves 60 s × 0.01 USD/s = 0.60 USD
    clock = FakeClock()
    assert current() is None
    with ComputeSession(spec2, settings, task_key="k9", holder="h", clock=clock) as cs:
        assert current() is cs and cs.reserved_s == pytest.approx(60) and not cs.exhausted()
        clock.advance(59)
        assert cs.remaining_s() == pytest.approx(1) and not cs.exhausted()
        clock.advance(1)
        assert cs.exhausted()  # the work stops here: it has run for all it reserved
        clock.advance(30)  # it did not stop at once: still charged no more than it reserved
    assert current() is None and cs.outcome.seconds == 90 and cs.outcome.cost_usd == pytest.approx(0.60)


def test_work_whose_reservation_lapsed_is_told_to_stop(env, spec):
    settings, _ = env
    spec2 = with_compute(spec, team="t10", execution_timeout_minutes=10)
    clock = FakeClock()
    beat = dt.timedelta(seconds=20)
    with ComputeSession(spec2, settings, task_key="k10", holder="h", heartbeat=beat, clock=clock) as cs:
        assert not cs.exhausted()
        clock.advance(61)  # three beats missed (a paused process, a DB outage): its room may have gone to others
        Ledger(get_engine(settings.db_url), settings.prices, clock=clock).expire_stale()
        assert cs.beat() is False and cs.exhausted()


def _hold_and_sleep(home: str, prices: str, db_url: str, ready) -> None:  # runs in a spawned process
    os.environ.update(ATIVO_HOME=home, ATIVO_PRICES=prices, ATIVO_DB_URL=db_url)
    from ativo.spec import load_spec

    spec = load_spec(os.path.join(os.environ["ATIVO_SPECS_DIR"], "adult_income.yaml"))
    spec = with_compute(spec, device="cuda", team="t7")
    cs = ComputeSession(spec, load_settings(), task_key="k", holder="doomed", devices=1, heartbeat=HOLDER_BEAT)
    cs.__enter__()
    ready.set()
    time.sleep(600)


def check_sigkilled_holder_expires(spec, home: str, db_url: str) -> None:
    """A holder SIGKILLed mid-task: its lease and its reservation stop counting at expiry, the device is free.

    The caller points ``ATIVO_DB_URL`` at ``db_url``.
    """
    settings = load_settings()
    ctx = processes.context()
    ready = ctx.Event()
    proc = ctx.Process(target=_hold_and_sleep, args=(home, PRICES, db_url, ready))
    proc.start()
    try:
        assert ready.wait(60), "the holder never started"
        # This side reads time off its own clock, set one ttl ahead of now: the lease and the reservation were
        # taken before now, so by then they have lapsed unless the holder's heartbeat renewed them since.
        clock = FakeClock(utcnow() + HOLDER_TTL)
        leases = LeaseManager(get_engine(db_url), devices=1, clock=clock)
        ledger = Ledger(get_engine(db_url), settings.prices, clock=clock)

        def renewed() -> bool:
            live = [(r["holder"], r["expired"]) for r in leases.list()] == [("doomed", False)]
            return live and ledger.status("t7")["reserved_usd"] > 0

        wait_until(renewed, 30, 0.05, "the holder's heartbeat to renew its lease and reservation past their ttl")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
    assert ledger.status("t7")["reserved_usd"] > 0  # dead, but not yet past its last renewal's ttl: still counted
    assert leases.try_acquire("next") is None
    clock.jump_to(utcnow() + HOLDER_TTL + dt.timedelta(seconds=1))  # every renewal was before now: all lapsed
    assert ledger.status("t7")["reserved_usd"] == 0  # no longer holds budget
    assert ledger.expire_stale() == 1  # and the ledger says so
    spec2 = with_compute(spec, device="cuda", team="t7", gpu_fallback="fail")
    with ComputeSession(spec2, settings, task_key="k", holder="next", devices=1, clock=clock) as cs:
        assert cs.placement.lease.device == 0  # the device is free again


def test_sigkilled_holder_loses_its_lease_and_its_reservation_at_expiry(env, spec, ativo_home, monkeypatch):
    settings, _ = env
    monkeypatch.setenv("ATIVO_DB_URL", settings.db_url)
    check_sigkilled_holder_expires(spec, str(ativo_home), settings.db_url)
