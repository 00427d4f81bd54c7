"""The MONITOR DAG of one spec: judge the champion's live window, then announce a drift that should retrain."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from airflow.sdk import DAG, Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException

from ativo.airflow.dags.common import dag_kwargs, drift_asset, schedule
from ativo.airflow.failure import fail
from ativo.config import load_settings
from ativo.spec import ModelSpec


def build_monitor_dag(spec: ModelSpec) -> DAG:
    """Monitoring of one spec's champion on ``monitor.cron``: the window's drift and decay, and whether to retrain.

    judge_window (prediction and label logs → statistics → report beside the model card → decision recorded, with
    the gauges ``/ativo/metrics`` serves; on-call paged for a drift held back) → announce_drift (the
    ``<spec>.drift`` Asset, only for a sustained drift outside the cooldown and within budget).
    """
    drift = drift_asset(spec)

    @dag(
        schedule=schedule(spec, "monitor"),
        **dag_kwargs(spec, "monitor"),
        params={
            "start": Param(
                None,
                type=["null", "string"],
                format="date-time",
                description="Window start (ISO 8601); empty = the run's data interval.",
            ),
            "end": Param(
                None,
                type=["null", "string"],
                format="date-time",
                description="Window end (ISO 8601, exclusive); empty = the run's data interval.",
            ),
        },
    )
    def monitor() -> None:
        @task
        def judge_window() -> dict[str, Any]:
            """Read the window, judge it against the champion's reference profile, report, decide, record."""
            from ativo.airflow.notifier import send_to_oncall
            from ativo.monitor.run import monitor_window
            from ativo.ops.alerts import drift_payload

            context = get_current_context()
            params = context["params"]
            start = dt.datetime.fromisoformat(params["start"]) if params.get("start") else None
            end = dt.datetime.fromisoformat(params["end"]) if params.get("end") else None
            start = start or context["data_interval_start"]
            end = end or context["data_interval_end"]
            if start is None or end is None or start >= end:
                fail(f"no window to monitor: start {start}, end {end} (give both, start first)")
            doc = monitor_window(
                spec, load_settings(), start.astimezone(dt.UTC), end.astimezone(dt.UTC), dag_run_id=context["run_id"]
            )
            decision = doc["decision"]
            log = logging.getLogger("ativo.monitor")
            log.info(
                "window %s → %s: %d rows; %s",
                doc["window"]["start"],
                doc["window"]["end"],
                doc["assessment"]["rows"],
                "; ".join(doc["assessment"]["reasons"]) or "no drift",
            )
            log.info("decision: %s: %s (report %s)", decision["action"], decision["reason"], doc["report_html_uri"])
            if decision["page"]:
                send_to_oncall(spec.oncall_connection, drift_payload(doc))
            return {k: doc[k] for k in ("spec", "version", "window", "decision", "report_uri", "report_html_uri")} | {
                "reasons": doc["assessment"]["reasons"],
                "rows": doc["assessment"]["rows"],
            }

        @task(outlets=[drift])
        def announce_drift(judged: dict[str, Any]) -> dict[str, Any]:
            """Emit the drift Asset for a new episode (skipped otherwise, saying why) and tell on-call."""
            from ativo.airflow.notifier import send_to_oncall
            from ativo.ops.alerts import drift_payload

            decision = judged["decision"]
            if not decision["emit"]:
                raise AirflowSkipException(f"no retraining: {decision['action']}: {decision['reason']}")
            extra = {
                "episode": decision["episode"],
                "version": judged["version"],
                "window": judged["window"],
                "reasons": judged["reasons"][:20],
                "report": judged["report_html_uri"],
            }
            get_current_context()["outlet_events"][drift].extra = extra
            send_to_oncall(
                spec.oncall_connection,
                drift_payload({**judged, "assessment": {"reasons": judged["reasons"], "rows": judged["rows"]}}),
            )
            return extra

        announce_drift(judge_window())  # type: ignore[arg-type]  # XComArg at parse time

    return monitor()
