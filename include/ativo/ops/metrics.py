"""Budgets, spend, GPU leases and the monitor's gauges as Prometheus metrics (text exposition format).

The figures are the ones `ativo budget status` and `ativo leases` print, read from the platform DB at scrape
time, so any process (a CLI call, a sidecar, an Airflow plugin endpoint) can serve them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from sqlalchemy import Engine, func, select

from ativo.compute.budget import Ledger
from ativo.compute.leases import LeaseManager
from ativo.ops.monitor_metrics import add_gauges
from ativo.store.db import (
    budget_alerts,
    dataset_versions,
    erasure_requests,
    quarantined_batches,
    spend_ledger,
    utcnow,
)

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
    _platform_gauges(registry, engine, specs)
    return bytes(generate_latest(registry))


def _platform_gauges(registry: CollectorRegistry, engine: Engine, specs: Sequence[ModelSpec]) -> None:
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
    with engine.connect() as conn:
        for r in conn.execute(select(budget_alerts)).mappings():
            sent.labels(r["team"], r["period"], str(r["threshold"])).set(1)
        rows = conn.execute(
            select(
                spend_ledger.c.team,
                spend_ledger.c.spec,
                spend_ledger.c.resource,
                spend_ledger.c.period,
                func.sum(spend_ledger.c.actual_usd),
            )
            .where(spend_ledger.c.state == "settled")
            .group_by(spend_ledger.c.team, spend_ledger.c.spec, spend_ledger.c.resource, spend_ledger.c.period)
        )
        for team, spec, resource, period, usd in rows:
            spend.labels(team, spec, resource, period).set(usd or 0.0)
        counts: dict[str, int] = dict(
            conn.execute(select(quarantined_batches.c.spec, func.count()).group_by(quarantined_batches.c.spec)).all()
        )
        latest = select(dataset_versions.c.spec, func.max(dataset_versions.c.version)).group_by(dataset_versions.c.spec)
        versions: dict[str, int] = dict(conn.execute(latest).all())
        by_status: dict[tuple[str, str], int] = {}
        pending: dict[str, list[dt.datetime]] = {}
        for spec, status, received in conn.execute(
            select(erasure_requests.c.spec, erasure_requests.c.status, erasure_requests.c.received_at)
        ):
            by_status[(spec, status)] = by_status.get((spec, status), 0) + 1
            if status != "closed":
                pending.setdefault(spec, []).append(received if received.tzinfo else received.replace(tzinfo=dt.UTC))
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
