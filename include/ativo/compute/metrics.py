"""Budgets, spend, GPU leases and the monitor's gauges as Prometheus metrics (text exposition format).

The figures are the ones `ativo budget status` and `ativo leases` print, read from the platform DB at scrape
time, so any process (a CLI call, a sidecar, an Airflow plugin endpoint) can serve them.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from sqlalchemy import Engine

from ativo.compute.budget import Ledger
from ativo.compute.leases import LeaseManager
from ativo.monitor.metrics import add_gauges


def render(engine: Engine, prices: Mapping[str, float], lease_manager: LeaseManager | None = None) -> bytes:
    """The current budget, spend and lease figures in Prometheus text format."""
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
    return bytes(generate_latest(registry))
