"""One unit of work under a spec's compute policy: a device, a budget reservation, then a settlement.

:class:`ComputeSession` is what every compute-bound task runs inside (the Airflow operator in
:mod:`ativo.airflow.compute`, and plain Python such as ``bench/hpo.py``)::

    with ComputeSession(spec, settings, task_key="adult_income.trial", holder="run/trial/3") as cs:
        train(device=cs.placement.device, threads=cs.placement.threads)

On entry it places the work (a GPU lease bound to ``CUDA_VISIBLE_DEVICES``, or the CPU when the spec says so or
falls back) and reserves the estimated cost; a heartbeat thread keeps the lease and the reservation alive while the
work runs, so a holder that is SIGKILLed loses both at expiry. On a clean exit the actual cost
(seconds × price × slots, at most the reservation) is settled and newly crossed 50/80/100 % thresholds are
reported; on an exception the reservation is released and nothing is charged.

The reservation is the most the work may cost: :func:`current` is the session the calling thread runs in, and its
:meth:`ComputeSession.exhausted` says when the work has run for what it reserved, for the work to stop there (a
trial's boosting loop checks it every round and is pruned).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from collections.abc import Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from ativo.compute.budget import BudgetExceeded, Ledger, Reservation, usd
from ativo.compute.leases import Lease, LeaseManager, NoDeviceAvailable
from ativo.config import Settings
from ativo.spec import ModelSpec
from ativo.store.db import get_engine, utcnow

log = logging.getLogger(__name__)

_CURRENT: ContextVar[ComputeSession | None] = ContextVar("ativo_compute_session", default=None)


def current() -> ComputeSession | None:
    """The compute session the calling thread's work runs in (None outside one)."""
    return _CURRENT.get()


AlertHook = Callable[[str, list[int], dict[str, Any]], None]
"""Called with (team, thresholds newly crossed, budget status) after a settlement crosses a threshold."""


@dataclass(frozen=True)
class Placement:
    """Where the work runs and what it is billed as."""

    device: str  # "cpu" or "cuda" (the leased device is the only one visible)
    resource: str  # price key: "cpu" or "gpu"
    slots: int  # billed units of ``resource``
    threads: int  # CPU threads the work may use
    lease: Lease | None = None
    note: str = ""


@dataclass
class Outcome:
    """What a finished session cost."""

    seconds: float
    cost_usd: float
    crossed: list[int] = field(default_factory=list)


def place(
    spec: ModelSpec,
    engine: Engine,
    holder: str,
    *,
    devices: int | None = None,
    ttl: dt.timedelta,
    wait: dt.timedelta = dt.timedelta(minutes=5),
    clock: Callable[[], dt.datetime] = utcnow,
) -> Placement:
    """Choose the device for one task of ``spec``: a leased GPU, or the CPU (by spec or by fallback).

    ``clock`` is the time the lease goes by (see :class:`LeaseManager`).

    Raises:
        NoDeviceAvailable: the spec wants a GPU, none can be leased, and its ``gpu_fallback`` is ``fail``.
    """
    compute = spec.compute
    cpu = Placement(device="cpu", resource="cpu", slots=compute.pool_slots, threads=compute.pool_slots)
    if compute.device == "cpu":
        return cpu
    manager = LeaseManager(engine, devices=devices, ttl=ttl, clock=clock)
    try:
        lease = manager.acquire(holder, wait=wait if manager.devices else dt.timedelta(0))
    except NoDeviceAvailable as err:
        if compute.gpu_fallback == "fail":
            raise NoDeviceAvailable(f"spec '{spec.name}' needs a GPU (compute.gpu_fallback: fail): {err}") from err
        note = f"{err}; running on CPU (compute.gpu_fallback: cpu)"
        log.warning("%s", note)
        return Placement(device="cpu", resource="cpu", slots=compute.pool_slots, threads=compute.pool_slots, note=note)
    return Placement(
        device="cuda",
        resource="gpu",
        slots=1,
        threads=compute.pool_slots,
        lease=lease,
        note=f"GPU {lease.device} on {lease.host}",
    )


class ComputeSession:
    """Place, reserve, heartbeat, settle or release: the compute policy of one task (see the module doc).

    Args:
        spec: the spec whose ``compute`` section applies (team, device, fallback, priority, timeout).
        settings: platform settings (DB URL, prices).
        task_key: what the cost history is keyed by (same key → same estimate), e.g. ``adult_income.trial``.
        holder: a unique name of this run of the task (lease holder).
        started_at: when billing starts (the task instance's start); now when None.
        heartbeat: how often the lease and reservation are renewed (real time: the heartbeat thread's interval);
            they expire after three missed beats.
        devices: GPUs on this host (detected when None).
        on_alert: called when a settlement crosses 50/80/100 % of the team's budget for the first time this period.
        clock: the current time (aware UTC) that the lease, the reservation and the billed duration
            (exit − ``started_at``) go by; a test passes a fake one and advances it instead of sleeping.
    """

    def __init__(
        self,
        spec: ModelSpec,
        settings: Settings,
        *,
        task_key: str,
        holder: str,
        started_at: dt.datetime | None = None,
        heartbeat: dt.timedelta = dt.timedelta(seconds=20),
        devices: int | None = None,
        engine: Engine | None = None,
        on_alert: AlertHook | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.spec, self.settings = spec, settings
        self.task_key, self.holder = task_key, holder
        self.started_at = started_at
        self.heartbeat = heartbeat
        self.ttl = heartbeat * 3
        self.devices = devices
        self.clock = clock
        self.engine = engine or get_engine(settings.db_url)
        self.ledger = Ledger(self.engine, settings.prices, clock=clock)
        self.on_alert = on_alert
        self.placement: Placement | None = None
        self.reservation: Reservation | None = None
        self.outcome: Outcome | None = None
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        self._cuda_before: str | None = None
        self._token: Token[ComputeSession | None] | None = None
        self._lost = False  # the reservation lapsed while the work ran: it must stop

    @property
    def timeout(self) -> dt.timedelta:
        """The spec's execution timeout: the cap of the cost estimate."""
        return dt.timedelta(minutes=self.spec.compute.execution_timeout_minutes)

    def estimate(self, resource: str, slots: int) -> float:
        """What this task reserves (a bound from the history of ``task_key``, capped by the timeout)."""
        return self.ledger.estimate(self.task_key, resource, slots, self.timeout)

    @property
    def reserved_s(self) -> float | None:
        """How long the work may run on what it reserved (None before the reservation, or at a price of 0)."""
        if self.reservation is None or self.placement is None:
            return None
        per_second = self.ledger.price(self.placement.resource) * self.placement.slots / 3600
        return self.reservation.estimate_usd / per_second if per_second > 0 else None

    def remaining_s(self) -> float | None:
        """Seconds left of the reservation (negative once passed; None when unbounded)."""
        reserved = self.reserved_s
        if reserved is None or self.started_at is None:
            return None
        return reserved - (self.clock() - self.started_at).total_seconds()

    def exhausted(self) -> bool:
        """Whether the work must stop now.

        It has run for all it reserved (it will be charged no more), or its reservation lapsed (missed heartbeats)
        and its room may have gone to other work.
        """
        if self._lost:
            return True
        left = self.remaining_s()
        return left is not None and left <= 0

    def __enter__(self) -> ComputeSession:
        compute = self.spec.compute
        self.placement = place(
            self.spec, self.engine, self.holder, devices=self.devices, ttl=self.ttl, clock=self.clock
        )
        try:
            self.reservation = self.ledger.reserve(
                team=compute.team,
                spec=self.spec.name,
                task_key=self.task_key,
                estimate_usd=self.estimate(self.placement.resource, self.placement.slots),
                resource=self.placement.resource,
                slots=self.placement.slots,
                priority=compute.priority,
                timeout=self.ttl,
            )
        except BaseException:
            self._release_lease()
            raise
        if self.placement.lease is not None:
            self._cuda_before = os.environ.get("CUDA_VISIBLE_DEVICES")
            os.environ.update(self.placement.lease.env())
        self.started_at = self.started_at or self.clock()
        self._beat = threading.Thread(target=self._heartbeat, name=f"ativo-heartbeat-{self.holder}", daemon=True)
        self._beat.start()
        self._token = _CURRENT.set(self)
        reserved = self.reserved_s
        log.info(
            "compute: %s on %s, reserved %s USD of budget '%s' (reservation %d: at most %s)",
            self.holder,
            self.placement.note or self.placement.device,
            usd(self.reservation.estimate_usd),
            compute.team,
            self.reservation.id,
            f"{reserved:.1f} s" if reserved is not None else "unbounded",
        )
        return self

    def _leases(self) -> LeaseManager:
        return LeaseManager(self.engine, devices=0, ttl=self.ttl, clock=self.clock)

    def beat(self) -> bool:
        """One heartbeat: renew the reservation and the lease for another ttl (the heartbeat thread calls this).

        Returns:
            False if the reservation had already expired or the lease was lost (each is logged), else True.
        """
        kept = True
        if self.reservation is not None and not self.ledger.renew(self.reservation, self.ttl):
            log.error("reservation %d expired while its task was running: stopping it", self.reservation.id)
            self._lost = True
            kept = False
        if self.placement is not None and self.placement.lease is not None:
            if self._leases().renew(self.placement.lease) is None:
                log.error("lease on GPU %d was lost while its task was running", self.placement.lease.device)
                kept = False
        return kept

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.heartbeat.total_seconds()):
            try:
                self.beat()
            except Exception:  # a DB hiccup must not kill the work; the next beat tries again
                log.exception("compute heartbeat failed")

    def _release_lease(self) -> None:
        if self.placement is not None and self.placement.lease is not None:
            self._leases().release(self.placement.lease)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=10)
        try:
            assert self.reservation is not None and self.started_at is not None
            seconds = max(0.0, (self.clock() - self.started_at).total_seconds())
            if exc_type is None:
                cost, crossed = self.ledger.settle(self.reservation, seconds)
                self.outcome = Outcome(seconds=seconds, cost_usd=cost, crossed=crossed)
                capped = "" if cost < self.reservation.estimate_usd else " (all it reserved: the most it may cost)"
                log.info("compute: %s ran %.2f s, settled %s USD%s", self.holder, seconds, usd(cost), capped)
                if crossed and self.on_alert is not None:
                    self.on_alert(self.reservation.team, crossed, self.ledger.status(self.reservation.team))
            else:
                self.ledger.release(self.reservation)
                log.info("compute: %s failed after %.2f s; reservation released", self.holder, seconds)
        finally:
            if self._token is not None:
                try:
                    _CURRENT.reset(self._token)
                except ValueError:  # exited in another context than it was entered in: nothing of ours to reset
                    pass
                self._token = None
            self._release_lease()
            if self.placement is not None and self.placement.lease is not None:
                if self._cuda_before is None:
                    os.environ.pop("CUDA_VISIBLE_DEVICES", None)
                else:
                    os.environ["CUDA_VISIBLE_DEVICES"] = self._cuda_before


__all__ = ["BudgetExceeded", "ComputeSession", "NoDeviceAvailable", "Outcome", "Placement", "place"]
