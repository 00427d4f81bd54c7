"""One monitoring run of a spec: the champion's window → statistics → report → decision.

The MONITOR DAG calls :func:`monitor_window` for its data interval; so can a test or a notebook. The decision
(:mod:`ativo.monitor.decide`) is recorded in the platform DB, where ``/ativo/metrics`` reads the gauges from.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ativo.monitor.profile import PROFILE_TAG, Profile
from ativo.spec import ModelSpec
from ativo.store import prefixes

if TYPE_CHECKING:
    from ativo.config import Settings

log = logging.getLogger(__name__)

REPORT_TAG = "ativo.monitor_report_uri"


def load_profile(spec: ModelSpec, settings: Settings, version: str) -> tuple[Profile, str | None]:
    """The reference profile of a registered version, and the version's MLflow run.

    Raises:
        LookupError: the version has no profile (registered before profiles existed).
    """
    from mlflow.artifacts import download_artifacts

    from ativo.model.artifact import registered_version

    mv = registered_version(spec, settings.mlflow_tracking_uri, version)
    uri = mv.tags.get(PROFILE_TAG)
    if not uri:
        raise LookupError(
            f"{spec.registered_model_name} version {version} has no reference profile (tag "
            f"{PROFILE_TAG}): it was registered before profiles existed; retrain it to monitor it"
        )
    path = download_artifacts(artifact_uri=uri, tracking_uri=settings.mlflow_tracking_uri)
    return Profile.from_dict(json.loads(Path(path).read_text())), mv.run_id


def finite(doc: Any) -> Any:
    """``doc`` with NaN and infinities as None, so that it is strict JSON."""
    import math

    if isinstance(doc, float):
        return doc if math.isfinite(doc) else None
    if isinstance(doc, dict):
        return {k: finite(v) for k, v in doc.items()}
    if isinstance(doc, list | tuple):
        return [finite(v) for v in doc]
    return doc


def _window_tag(start: dt.datetime, end: dt.datetime) -> str:
    return f"{start:%Y%m%dT%H%M%S}-{end:%Y%m%dT%H%M%S}"


def monitor_window(
    spec: ModelSpec,
    settings: Settings,
    start: dt.datetime,
    end: dt.datetime,
    *,
    dag_run_id: str | None = None,
    version: str | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Judge the champion's (or ``version``'s) decisions in ``[start, end)``, report, and decide.

    Returns:
        ``{"spec", "version", "window", "assessment", "decision", "report_uri", "report_html_uri", "seconds"}``.
    """
    from ativo.model.registry import aliases
    from ativo.monitor.decide import decide, retraining_budget
    from ativo.monitor.window import Assessment, assess, read_window
    from ativo.store.db import get_engine
    from ativo.store.objects import open_store

    t0 = time.perf_counter()
    engine = get_engine(settings.db_url)
    version = version or aliases(spec, settings).get("champion")
    window = {"start": start.isoformat(), "end": end.isoformat()}

    def not_judged(why: str) -> dict[str, Any]:  # recorded with the reason, rather than failing every day
        assessment = Assessment(spec.name, version or "", 0, judged=False, drifted=False, reasons=[why])
        decision = decide(
            engine,
            spec,
            assessment,
            window_start=start,
            window_end=end,
            report_uri=None,
            dag_run_id=dag_run_id,
            now=now,
        )
        return {
            "spec": spec.name,
            "version": version,
            "window": window,
            "assessment": assessment.to_dict(),
            "decision": decision.to_dict(),
            "report_uri": None,
            "report_html_uri": None,
            "seconds": round(time.perf_counter() - t0, 3),
        }

    if version is None:
        # said so that it stays true when read later (the Ativo page shows the last run's reason, and a champion may
        # have gone live since)
        return not_judged(f"no version of {spec.registered_model_name} was champion when this window was judged")
    try:
        profile, run_id = load_profile(spec, settings, version)
    except LookupError as err:  # a version registered before profiles existed: it says how to fix it
        return not_judged(str(err))
    frame = read_window(open_store(settings), spec, start, end, version=version)
    assessment = assess(spec, profile, frame)
    budget = retraining_budget(spec, settings) if assessment.drifted else None
    tag = _window_tag(start, end)
    base = f"runs:/{run_id}/{prefixes.monitor_report(tag)}" if run_id else None
    report_uri = f"{base}/report.json" if base else None
    html_uri = f"{base}/report.html" if base else None
    decision = decide(
        engine,
        spec,
        assessment,
        window_start=start,
        window_end=end,
        report_uri=html_uri if assessment.judged else None,
        budget_problem=budget,
        dag_run_id=dag_run_id,
        now=now,
    )
    doc = {
        "spec": spec.name,
        "version": version,
        "window": window,
        "assessment": assessment.to_dict(),
        "decision": decision.to_dict(),
        "alpha": spec.monitor.alpha,
        "psi_threshold": spec.monitor.psi_threshold,
        "report_uri": report_uri,
        "report_html_uri": html_uri,
    }
    if run_id and assessment.judged:
        _log_report(spec, settings, run_id, version, tag, doc, profile, assessment.counts)
    doc["seconds"] = round(time.perf_counter() - t0, 3)
    log.info(
        "%s v%s window %s → %s: %d rows, %s; %s: %s",
        spec.name,
        version,
        start,
        end,
        assessment.rows,
        "; ".join(assessment.reasons) or "no drift",
        decision.action,
        decision.reason,
    )
    return doc


def _log_report(
    spec: ModelSpec,
    settings: Settings,
    run_id: str,
    version: str,
    tag: str,
    doc: dict[str, Any],
    profile: Profile,
    counts: dict[str, tuple[int, ...]],
) -> None:
    """Write the JSON and HTML report beside the model card and link the latest from the version."""
    from ativo.model.client import mlflow_client
    from ativo.model.registry import tag_version
    from ativo.monitor.report import render_html

    client = mlflow_client(settings)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        (out / "report.json").write_text(json.dumps(finite(doc), indent=2, default=str, allow_nan=False))
        (out / "report.html").write_text(render_html(doc, profile, counts), encoding="utf-8")
        client.log_artifacts(run_id, str(out), artifact_path=prefixes.monitor_report(tag))
    tag_version(spec, settings, version, {REPORT_TAG: str(doc["report_html_uri"])})
