"""GPU leases: concurrent holders never share a device; a killed holder loses its lease at expiry.

Expiry and renewal are checked on a fake clock (advanced past a ttl instead of slept through); only the contention
test holds devices for real time, since it is about real processes overlapping.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import time

import pytest

from ativo.compute.leases import LeaseManager, NoDeviceAvailable, detect_gpus
from ativo.store.db import get_engine
from ativo.waiting import wait_until
from tests.clock import FakeClock
from tests.support import processes

HOLDER_TTL = dt.timedelta(seconds=30)  # the doomed holder's lease; the survivor's fake clock jumps past it


def _hold(url: str, devices: int, holder: str, hold_s: float) -> tuple[int, float, float] | None:
    mgr = LeaseManager(get_engine(url), devices=devices, host="node-a", ttl=dt.timedelta(seconds=30))
    lease = mgr.acquire(holder, wait=dt.timedelta(seconds=60), poll_s=0.05)
    start = time.time()
    time.sleep(hold_s)
    end = time.time()
    mgr.release(lease)
    return lease.device, start, end


def assert_never_shared(intervals: list[tuple[int, float, float]]) -> None:
    by_device: dict[int, list[tuple[float, float]]] = {}
    for device, start, end in intervals:
        by_device.setdefault(device, []).append((start, end))
    for device, spans in by_device.items():
        spans.sort()
        for (_s1, e1), (s2, _e2) in zip(spans, spans[1:], strict=False):
            assert s2 >= e1, f"device {device} was held by two holders at once"


def run_contention(url: str, workers: int = 8, devices: int = 2) -> list[tuple[int, float, float]]:
    with processes.context().Pool(workers) as pool:
        return pool.starmap(_hold, [(url, devices, f"task-{i}", 0.3) for i in range(workers * 2)])


def test_many_processes_never_share_a_device_sqlite(tmp_path):
    intervals = run_contention(f"sqlite:///{tmp_path / 'p.db'}")
    assert len(intervals) == 16 and {d for d, *_ in intervals} == {0, 1}
    assert_never_shared(intervals)


def _hold_forever(url: str, ready: str) -> None:
    mgr = LeaseManager(get_engine(url), devices=1, host="node-a", ttl=HOLDER_TTL)
    mgr.acquire("doomed-task")
    open(ready, "w").close()
    time.sleep(600)


def test_sigkilled_holder_loses_its_lease_at_expiry(tmp_path):
    url = f"sqlite:///{tmp_path / 'p.db'}"
    ready = tmp_path / "ready"
    proc = processes.context().Process(target=_hold_forever, args=(url, str(ready)))
    proc.start()
    try:
        wait_until(ready.exists, 60, 0.05, "the doomed holder to lease the device")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
    clock = FakeClock()  # the holder leased before now, so its lease ends less than one ttl from now
    mgr = LeaseManager(get_engine(url), devices=1, host="node-a", clock=clock)
    assert mgr.try_acquire("next-task") is None  # not expired yet: the device is still reserved
    assert [(r["holder"], r["expired"]) for r in mgr.list()] == [("doomed-task", False)]
    clock.advance(HOLDER_TTL.total_seconds() + 1)  # past its ttl, and the dead holder renewed nothing
    assert [(r["holder"], r["expired"]) for r in mgr.list()] == [("doomed-task", True)]
    lease = mgr.acquire("next-task", wait=dt.timedelta(seconds=10), poll_s=0.2)
    assert lease.device == 0 and lease.env() == {"CUDA_VISIBLE_DEVICES": "0"}
    assert [r["holder"] for r in mgr.list()] == ["next-task"]


def fake_manager(tmp_path, clock: FakeClock) -> LeaseManager:
    engine = get_engine(f"sqlite:///{tmp_path / 'p.db'}")
    return LeaseManager(engine, devices=1, host="h", ttl=dt.timedelta(seconds=1), clock=clock)


def test_renew_keeps_and_release_frees(tmp_path):
    clock = FakeClock()
    mgr = fake_manager(tmp_path, clock)
    lease = mgr.acquire("a")
    clock.advance(0.6)
    renewed = mgr.renew(lease)
    assert renewed is not None and renewed.expires_at == clock.now() + mgr.ttl
    clock.advance(0.6)  # 1.2 s after acquiring: past the first ttl, inside the renewed one
    assert mgr.try_acquire("b") is None  # renewed, so still held
    mgr.release(lease)
    assert mgr.try_acquire("b") is not None


def test_unrenewed_lease_expires_at_its_ttl_and_is_lost(tmp_path):
    clock = FakeClock()
    mgr = fake_manager(tmp_path, clock)
    lease = mgr.acquire("a")
    assert lease.expires_at == clock.now() + mgr.ttl
    clock.advance(0.999)
    assert mgr.try_acquire("b") is None and not mgr.list()[0]["expired"]  # just inside its ttl
    clock.advance(0.002)
    assert mgr.list()[0]["expired"]
    taken = mgr.try_acquire("b")  # an expired lease is fair game
    assert taken is not None and taken.device == lease.device
    assert mgr.renew(lease) is None  # "a" stopped renewing in time: the device is b's now
    assert [r["holder"] for r in mgr.list()] == ["b"]


def test_host_without_gpu_fails_clearly(tmp_path):
    mgr = LeaseManager(get_engine(f"sqlite:///{tmp_path / 'p.db'}"), devices=0, host="cpu-only")
    with pytest.raises(NoDeviceAvailable, match="host cpu-only has no GPU"):
        mgr.acquire("t")


def test_detect_gpus_honours_override():
    assert detect_gpus({"ATIVO_GPU_COUNT": "3"}) == 3
