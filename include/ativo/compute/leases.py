"""GPU device leases: a pool slot is not a device, a lease is.

A lease binds one holder (a running task) to one device index on one host, in the platform DB. The primary key
``(host, device)`` makes acquisition atomic on SQLite and PostgreSQL alike: two holders can never insert the
same device. A lease expires unless its holder renews it, so a crashed or SIGKILLed holder frees its device.
"""

from __future__ import annotations

import datetime as dt
import shutil
import socket
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, and_, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from ativo.config import load_settings
from ativo.errors import AtivoError
from ativo.store.db import gpu_leases, utcnow
from ativo.waiting import WaitTimeout, wait_until


class NoDeviceAvailable(AtivoError):
    """No GPU could be leased (none on the host, or all leased) and the spec does not fall back to CPU."""


@dataclass(frozen=True)
class Lease:
    """One device held by one holder until ``expires_at``."""

    host: str
    device: int
    holder: str
    expires_at: dt.datetime

    def env(self) -> dict[str, str]:
        """Environment that confines the holder's process to its device."""
        return {"CUDA_VISIBLE_DEVICES": str(self.device)}


def detect_gpus(env: Mapping[str, str] | None = None) -> int:
    """How many GPUs this host has: ``settings.gpu_count`` if set, else ``nvidia-smi -L``, else 0.

    Args:
        env: the environment whose settings to read (``ATIVO_GPU_COUNT``); ``os.environ`` when omitted.
    """
    gpu_count = load_settings(env).gpu_count
    if gpu_count is not None:
        return gpu_count
    if not shutil.which("nvidia-smi"):
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


class LeaseManager:
    """Acquire, renew and release device leases on one host.

    Args:
        engine: the platform DB.
        devices: device count on this host (``detect_gpus()`` when None).
        host: host name (this machine's when None).
        ttl: how long a lease lives without renewal.
        clock: the current time (aware UTC) that acquisition, renewal and expiry go by; a test passes a fake one.
    """

    def __init__(
        self,
        engine: Engine,
        devices: int | None = None,
        host: str | None = None,
        ttl: dt.timedelta | None = None,
        *,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.devices = detect_gpus() if devices is None else devices
        self.host = host or socket.gethostname()
        self.ttl = ttl or dt.timedelta(minutes=2)
        self.clock = clock

    def try_acquire(self, holder: str) -> Lease | None:
        """Lease a free device now, or return None if every device is held."""
        for device in range(self.devices):
            now = self.clock()
            with self.engine.begin() as conn:  # an expired lease is fair game: its holder stopped renewing
                conn.execute(
                    delete(gpu_leases).where(
                        and_(
                            gpu_leases.c.host == self.host, gpu_leases.c.device == device, gpu_leases.c.expires_at < now
                        )
                    )
                )
            try:
                with self.engine.begin() as conn:
                    conn.execute(
                        insert(gpu_leases).values(
                            host=self.host, device=device, holder=holder, acquired_at=now, expires_at=now + self.ttl
                        )
                    )
            except IntegrityError:
                continue  # held by someone else (or taken a moment ago): try the next device
            return Lease(self.host, device, holder, now + self.ttl)
        return None

    def acquire(self, holder: str, wait: dt.timedelta = dt.timedelta(0), poll_s: float = 1.0) -> Lease:
        """Lease a free device, waiting up to ``wait`` for one.

        Raises:
            NoDeviceAvailable: the host has no GPU, or none freed up in time.
        """
        if self.devices == 0:
            raise NoDeviceAvailable(f"host {self.host} has no GPU (nvidia-smi finds none; ATIVO_GPU_COUNT unset)")
        try:
            return wait_until(
                lambda: self.try_acquire(holder),
                wait.total_seconds(),
                poll_s,
                f"a free GPU on {self.host} for {holder}",
            )
        except WaitTimeout:
            held = ", ".join(f"{r['device']}: {r['holder']}" for r in self.list())
            raise NoDeviceAvailable(f"all {self.devices} GPU(s) on {self.host} are leased ({held})") from None

    def renew(self, lease: Lease) -> Lease | None:
        """Extend a lease; None if it was lost (expired and taken by another holder)."""
        expires = self.clock() + self.ttl
        with self.engine.begin() as conn:
            n = conn.execute(
                update(gpu_leases)
                .where(
                    gpu_leases.c.host == lease.host,
                    gpu_leases.c.device == lease.device,
                    gpu_leases.c.holder == lease.holder,
                )
                .values(expires_at=expires)
            ).rowcount
        return Lease(lease.host, lease.device, lease.holder, expires) if n else None

    def release(self, lease: Lease) -> None:
        """Give the device back (only if this holder still has it)."""
        with self.engine.begin() as conn:
            conn.execute(
                delete(gpu_leases).where(
                    gpu_leases.c.host == lease.host,
                    gpu_leases.c.device == lease.device,
                    gpu_leases.c.holder == lease.holder,
                )
            )

    def list(self, all_hosts: bool = False) -> list[dict[str, Any]]:
        """Current leases (with an ``expired`` flag), by host and device."""
        q = select(gpu_leases).order_by(gpu_leases.c.host, gpu_leases.c.device)
        if not all_hosts:
            q = q.where(gpu_leases.c.host == self.host)
        now = self.clock()
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(q).mappings()]
        for r in rows:
            exp = r["expires_at"] if r["expires_at"].tzinfo else r["expires_at"].replace(tzinfo=dt.UTC)
            r["expired"] = exp < now
        return rows
