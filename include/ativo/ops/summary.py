"""What the platform holds now: landed days, partitions, quarantine, dataset versions, registered models."""

from __future__ import annotations

import re
from typing import Any

from ativo.compute.budget import Ledger
from ativo.config import Settings
from ativo.data import quarantine
from ativo.data.versioning import versions_of
from ativo.spec import ModelSpec
from ativo.store import prefixes
from ativo.store.db import get_engine
from ativo.store.objects import open_store

_DAY = re.compile(r"(\d{4}-\d{2}-\d{2})")


def collect(spec: ModelSpec, settings: Settings, *, with_models: bool = True) -> dict[str, Any]:
    """A JSON-serialisable summary of one spec's data and models."""
    store, engine = open_store(settings), get_engine(settings.db_url)
    landing_days = {m.group(1) for k in store.list(prefixes.landing(spec.name)) if (m := _DAY.search(k))}
    partitions = sorted({m.group(1) for k in store.list(prefixes.lake(spec.name)) if (m := _DAY.search(k))})
    quarantined: dict[str, dict[str, Any]] = {
        q.partition: {"reasons": q.reasons, "report_uri": q.report_uri} for q in quarantine.of_spec(engine, spec.name)
    }
    versions = [
        {"tag": v.tag, "rows": v.rows, "partitions": len(v.partitions), "manifest_hash": v.manifest_hash}
        for v in versions_of(engine, spec.name)
    ]
    out: dict[str, Any] = {
        "spec": spec.name,
        "landed_days": len(landing_days | set(quarantined)),
        "partitions": len(partitions),
        "partition_range": [partitions[0], partitions[-1]] if partitions else [],
        "quarantined": quarantined,
        "dataset_versions": versions,
    }
    out["budget"] = Ledger(engine, settings.prices).status(spec.compute.team)
    if with_models:
        out["models"] = registered_models(spec, settings)
    return out


def registered_models(spec: ModelSpec, settings: Settings) -> list[dict[str, Any]]:
    """Registered versions of the spec's model with their lineage tags, newest first."""
    from ativo.model.client import mlflow_client

    client = mlflow_client(settings, registry_uri=settings.mlflow_tracking_uri)
    try:
        versions = client.search_model_versions(f"name='{spec.registered_model_name}'")
    except Exception:  # registry empty or unreachable: report, do not crash the summary
        return []
    from ativo.model.registry import aliases as authorized

    try:  # what serves as the platform signed it (MLflow's aliases only mirror it), plus the challenger pointer
        aliases: dict[str, list[str]] = {}
        for a, v in sorted(authorized(spec, settings).items()):
            aliases.setdefault(str(v), []).append(a)
    except Exception:
        aliases = {}
    out = []
    for mv in sorted(versions, key=lambda v: int(v.version), reverse=True):
        run = client.get_run(mv.run_id) if mv.run_id else None
        out.append(
            {
                "name": mv.name,
                "version": mv.version,
                "run_id": mv.run_id,
                "dataset_version": mv.tags.get("ativo.dataset_version"),
                "git_commit": mv.tags.get("ativo.git_commit"),
                "test_auc": run.data.metrics.get("test_auc") if run else None,
                "study": mv.tags.get("ativo.study"),
                "trial_number": mv.tags.get("ativo.trial_number"),
                "gates": mv.tags.get("ativo.gates"),  # passed | rejected | None (not judged yet)
                "rejected_gates": mv.tags.get("ativo.rejected_gates"),
                "model_card_uri": mv.tags.get("ativo.model_card_uri"),
                "alias": ", ".join(aliases.get(str(mv.version), [])) or None,
            }
        )
    return out


def render(summary: dict[str, Any]) -> str:
    """The summary as lines for a terminal."""
    lines = [
        f"  landed days:        {summary['landed_days']}",
        f"  lake partitions:    {summary['partitions']}"
        + (f"  ({summary['partition_range'][0]} … {summary['partition_range'][1]})" if summary["partitions"] else ""),
        f"  quarantined days:   {len(summary['quarantined'])}",
    ]
    for day, q in summary["quarantined"].items():
        lines.append(f"    {day}: {'; '.join(q['reasons'])}")
        lines.append(f"      report: {q['report_uri']}")
    versions = summary["dataset_versions"]
    lines.append(
        f"  dataset versions:   {len(versions)}"
        + (f" (latest {versions[-1]['tag']}, {versions[-1]['rows']} rows)" if versions else "")
    )
    for m in summary.get("models", [])[:3]:
        auc = f", test AUC {m['test_auc']:.4f}" if m.get("test_auc") is not None else ""
        commit = str(m["git_commit"])[:12]
        trial = f", trial {m['trial_number']} of study {m['study']}" if m.get("study") else ""
        lines.append(
            f"  model {m['name']} v{m['version']}: dataset {m['dataset_version']}, commit {commit}{auc}{trial}"
        )
        if m.get("gates") == "passed":
            lines.append(
                f"    gates: all passed{' — aliases ' + m['alias'] if m.get('alias') else ''}; "
                f"model card {m['model_card_uri']}"
            )
        elif m.get("gates") == "rejected":
            lines.append(f"    gates: rejected by {m['rejected_gates']}; model card {m['model_card_uri']}")
    if not summary.get("models"):
        lines.append("  registered models:  none yet")
    if budget := summary.get("budget"):
        from ativo.compute.budget import usd

        limit = f"of {usd(budget['limit_usd'])} USD" if budget["limit_usd"] is not None else "USD (no limit set)"
        used = f" ({budget['used_pct']:.1f} %)" if budget.get("used_pct") is not None else ""
        lines.append(
            f"  compute spend:      {usd(budget['settled_usd'])} {limit}{used} this month, team '{budget['team']}' "
            "(ativo budget status)"
        )
    return "\n".join(lines)
