"""GPU leases: concurrent holders never share a device; a killed holder loses its lease at expiry."""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import os
import signal
import time

import pytest

from ativo.compute.leases import LeaseManager, NoDeviceAvailable, detect_gpus
from ativo.store.db import get_engine


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
    with mp.get_context("spawn").Pool(workers) as pool:
        return pool.starmap(_hold, [(url, devices, f"task-{i}", 0.3) for i in range(workers * 2)])


def test_many_processes_never_share_a_device_sqlite(tmp_path):
    intervals = run_contention(f"sqlite:///{tmp_path / 'p.db'}")
    assert len(intervals) == 16 and {d for d, *_ in intervals} == {0, 1}
    assert_never_shared(intervals)


def _hold_forever(url: str, ready: str) -> None:
    mgr = LeaseManager(get_engine(url), devices=1, host="node-a", ttl=dt.timedelta(seconds=2))
    mgr.acquire("doomed-task")
    open(ready, "w").close()
    time.sleep(600)


def test_sigkilled_holder_loses_its_lease_at_expiry(tmp_path):
    url = f"sqlite:///{tmp_path / 'p.db'}"
    ready = tmp_path / "ready"
    proc = mp.get_context("spawn").Process(target=_hold_forever, args=(url, str(ready)))
    proc.start()
    deadline = time.time() + 60
    while not ready.exists() and time.time() < deadline:
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    mgr = LeaseManager(get_engine(url), devices=1, host="node-a")
    assert mgr.try_acquire("next-task") is None  # not expired yet: the device is still reserved
    lease = mgr.acquire("next-task", wait=dt.timedelta(seconds=10), poll_s=0.2)
    assert lease.device == 0 and lease.env() == {"CUDA_VISIBLE_DEVICES": "0"}
    assert [r["holder"] for r in mgr.list()] == ["next-task"]


def test_renew_keeps_and_release_frees(tmp_path):
    mgr = LeaseManager(get_engine(f"sqlite:///{tmp_path / 'p.db'}"), devices=1, host="h", ttl=dt.timedelta(seconds=1))
    lease = mgr.acquire("a")
    time.sleep(0.6)
    assert mgr.renew(lease) is not None
    time.sleep(0.6)
    assert mgr.try_acquire("b") is None  # renewed, so still held
    mgr.release(lease)
    assert mgr.try_acquire("b") is not None


def test_host_without_gpu_fails_clearly(tmp_path):
    mgr = LeaseManager(get_engine(f"sqlite:///{tmp_path / 'p.db'}"), devices=0, host="cpu-only")
    with pytest.raises(NoDeviceAvailable, match="host cpu-only has no GPU"):
        mgr.acquire("t")


def test_detect_gpus_honours_override():
    assert detect_gpus({"ATIVO_GPU_COUNT": "3"}) == 3
