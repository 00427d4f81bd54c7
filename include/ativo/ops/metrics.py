"""Budgets, spend, GPU leases and the monitor's gauges as Prometheus metrics (text exposition format).

The figures are the ones `ativo budget status` and `ativo leases` print, read from the platform DB at scrape
time, so any process (a CLI call, a sidecar, an Airflow plugin endpoint) can serve them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from sqlalchemy import Engine

from ativo.compute.budget import Ledger
from ativo.compute.leases import LeaseManager
from ativo.data import quarantine
from ativo.data.versioning import latest_versions
from ativo.erasure import requests as rq
from ativo.ops.monitor_metrics import add_gauges
from ativo.store.db import utcnow

if TYPE_CHECKING:
    from ativo.spec import ModelSpec

ERASURE_STATUSES = ("received", "processing", "open", "closed")


def render(
    engine: Engine,
    prices: Mapping[str, float],
    lease_manager: LeaseManager | None = None,
    specs: Sequence[ModelSpec] = (),
) -> bytes:
    """The current budget, spend, lease, monitor, quarantine and erasure figures in Prometheus text format.

    ``specs`` give each spec's erasure SLA (a spec without one is judged against 72 hours) and make every spec's
    series appear at zero before it has any rows, so alert rules and dashboards see the series from the start.
    """
    registry = CollectorRegistry()
    limit = Gauge("ativo_budget_limit_usd", "Monthly budget limit", ["team"], registry=registry)
    spent = Gauge("ativo_budget_spent_usd", "Settled spend this period", ["team", "period"], registry=registry)
    reserved = Gauge(
        "ativo_budget_reserved_usd", "Live reservations this period", ["team", "period"], registry=registry
    )
    used = Gauge("ativo_budget_used_ratio", "Settled spend / limit this period", ["team", "period"], registry=registry)
    leases = Gauge(
        "ativo_gpu_leases", "GPU leases held (expired ones separately)", ["host", "state"], registry=registry
    )
    devices = Gauge("ativo_gpu_devices", "GPUs on this host", ["host"], registry=registry)

    ledger = Ledger(engine, prices)
    for team in ledger.teams():
        s = ledger.status(team)
        spent.labels(team, s["period"]).set(s["settled_usd"])
        reserved.labels(team, s["period"]).set(s["reserved_usd"])
        if s["limit_usd"] is not None:
            limit.labels(team).set(s["limit_usd"])
            used.labels(team, s["period"]).set(s["used_pct"] / 100)

    mgr = lease_manager or LeaseManager(engine)
    devices.labels(mgr.host).set(mgr.devices)
    counts: dict[tuple[str, str], int] = {}
    for row in mgr.list(all_hosts=True):
        key = (row["host"], "expired" if row["expired"] else "active")
        counts[key] = counts.get(key, 0) + 1
    for (host, state), n in counts.items():
        leases.labels(host, state).set(n)
    add_gauges(registry, engine)  # the monitor's, from the same DB
    _platform_gauges(registry, engine, ledger, specs)
    return bytes(generate_latest(registry))


def _platform_gauges(registry: CollectorRegistry, engine: Engine, ledger: Ledger, specs: Sequence[ModelSpec]) -> None:
    """Budget alerts sent, spend by spec, quarantined batches, dataset versions and erasure requests."""
    sent = Gauge(
        "ativo_budget_alerts_sent",
        "1 for each budget threshold alerted, by period",
        ["team", "period", "threshold"],
        registry=registry,
    )
    spend = Gauge(
        "ativo_spend_usd",
        "Settled spend by spec, resource and period",
        ["team", "spec", "resource", "period"],
        registry=registry,
    )
    quarantined = Gauge(
        "ativo_quarantined_batches",
        "Batches ever quarantined (a corrected batch does not remove one)",
        ["model"],
        registry=registry,
    )
    version = Gauge("ativo_dataset_version", "Latest dataset version number", ["model"], registry=registry)
    requests = Gauge("ativo_erasure_requests", "Erasure requests by status", ["model", "status"], registry=registry)
    overdue = Gauge(
        "ativo_erasure_overdue_requests", "Erasure requests not closed within their SLA", ["model"], registry=registry
    )
    oldest = Gauge(
        "ativo_erasure_oldest_pending_age_seconds",
        "Age of the oldest erasure request not closed",
        ["model"],
        registry=registry,
    )
    sla = Gauge("ativo_erasure_sla_seconds", "The spec's erasure SLA", ["model"], registry=registry)
    sla_s = {s.name: s.erasure.sla_hours * 3600.0 for s in specs}
    now = utcnow()
    for a in ledger.alerts():
        sent.labels(a.team, a.period, str(a.threshold)).set(1)
    for s in ledger.settled_spend(by_resource=True):
        spend.labels(s.team, s.spec, s.resource, s.period).set(s.usd)
    counts = quarantine.counts(engine)
    versions = {spec: v.version for spec, v in latest_versions(engine).items()}
    by_status: dict[tuple[str, str], int] = {}
    pending: dict[str, list[dt.datetime]] = {}
    for r in rq.states(engine):
        by_status[(r.spec, r.status)] = by_status.get((r.spec, r.status), 0) + 1
        if r.status != "closed":
            pending.setdefault(r.spec, []).append(r.received_at)
    models = sorted({*sla_s, *counts, *versions, *(k[0] for k in by_status)})
    for model in models:
        quarantined.labels(model).set(counts.get(model, 0))
        if model in versions:
            version.labels(model).set(versions[model])
        for status in ERASURE_STATUSES:
            requests.labels(model, status).set(by_status.get((model, status), 0))
        limit = sla_s.get(model, 72 * 3600.0)
        sla.labels(model).set(limit)
        ages = [(now - t).total_seconds() for t in pending.get(model, [])]
        overdue.labels(model).set(sum(age > limit for age in ages))
        oldest.labels(model).set(max(ages, default=0.0))
