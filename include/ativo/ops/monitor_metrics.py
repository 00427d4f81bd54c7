"""The monitor's gauges: each spec's latest monitoring run, read from the platform DB at scrape time.

Served by ``/ativo/metrics`` on Airflow's api-server (and ``ativo metrics``) with the budget and lease figures.
"""

from __future__ import annotations

import datetime as dt

from prometheus_client import CollectorRegistry, Gauge
from sqlalchemy import Engine

from ativo.monitor.decide import latest_runs
from ativo.store.episodes import counts as episode_counts

HELD = ("held_cooldown", "held_budget")


def add_gauges(registry: CollectorRegistry, engine: Engine) -> None:
    """Register the gauges of every spec's latest monitoring run on ``registry``."""
    g = {
        "rows": Gauge(
            "ativo_monitor_window_rows", "Decisions in the latest monitored window", ["model"], registry=registry
        ),
        "last": Gauge(
            "ativo_monitor_last_run_timestamp_seconds",
            "End of the latest monitored window",
            ["model"],
            registry=registry,
        ),
        "judged": Gauge(
            "ativo_monitor_judged", "1 when the latest window had enough rows to judge", ["model"], registry=registry
        ),
        "detected": Gauge(
            "ativo_drift_detected",
            "1 when the latest window drifted beyond noise and threshold",
            ["model", "version"],
            registry=registry,
        ),
        "psi": Gauge(
            "ativo_drift_psi",
            "PSI of a feature (or the score) in the latest window",
            ["model", "feature"],
            registry=registry,
        ),
        "p": Gauge(
            "ativo_drift_p_value",
            "Homogeneity test p-value of a feature in the latest window",
            ["model", "feature"],
            registry=registry,
        ),
        "held": Gauge(
            "ativo_drift_held",
            "1 when the latest window's sustained drift was held back",
            ["model", "why"],
            registry=registry,
        ),
        "episodes": Gauge(
            "ativo_drift_episodes", "Drift episodes announced for retraining", ["model"], registry=registry
        ),
        "est": Gauge(
            "ativo_estimated_auc",
            "AUC estimated without labels in the latest window",
            ["model", "version"],
            registry=registry,
        ),
        "est_std": Gauge("ativo_estimated_auc_std", "Its standard deviation", ["model", "version"], registry=registry),
        "auc": Gauge(
            "ativo_realised_auc",
            "AUC on the labelled rows of the latest window",
            ["model", "version"],
            registry=registry,
        ),
        "fair": Gauge(
            "ativo_fairness_difference",
            "Largest between-group rate difference in the latest window",
            ["model", "attribute", "metric"],
            registry=registry,
        ),
    }
    runs, episodes = latest_runs(engine), episode_counts(engine)
    for r in runs:
        model, version, fig = r["spec"], r["version"] or "", r["figures"] or {}
        g["rows"].labels(model).set(r["rows"])
        end = r["window_end"] if r["window_end"].tzinfo else r["window_end"].replace(tzinfo=dt.UTC)
        g["last"].labels(model).set(end.timestamp())
        g["judged"].labels(model).set(int(r["judged"]))
        g["detected"].labels(model, version).set(int(r["drifted"]))
        for why in HELD:
            g["held"].labels(model, why.removeprefix("held_")).set(int(r["decision"] == why))
        g["episodes"].labels(model).set(episodes.get(model, 0))
        for name, v in (fig.get("psi") or {}).items():
            if v is not None:
                g["psi"].labels(model, name).set(v)
        for name, v in (fig.get("p_value") or {}).items():
            if v is not None:
                g["p"].labels(model, name).set(v)
        for key, gauge in (("estimated_auc", "est"), ("estimated_auc_std", "est_std"), ("auc", "auc")):
            if fig.get(key) is not None:
                g[gauge].labels(model, version).set(fig[key])
        for key, v in (fig.get("fairness") or {}).items():
            if v is not None:
                attr, _, metric = key.partition(":")
                g["fair"].labels(model, attr, metric).set(v)
