"""The summary banner printed at the end of `make run`: where to look, the results and a served decision."""

from __future__ import annotations

import json
from typing import Any

from ativo.config import Settings
from ativo_dev.supervisor import admin_password, demo_key, url


def _sample_text(settings: Settings, spec_name: str, sample: dict[str, Any] | None, key: str) -> str:
    if sample is None:
        return f"   {spec_name}: no champion serving (no model version passed its gates; see its model cards)"
    a = sample["answer"]
    serve = sample["base"]
    top = ", ".join(f"{c['feature']} {c['contribution']:+.2f}" for c in a["explanation"]["contributions"][:4])
    lines = [
        f"   {spec_name}: POST {serve}/explain  (subject {sample['request']['subject_id']}):",
        f"     {a['label']} (score {a['score']:.3f}, threshold {a['threshold']:.3g}) from version {a['version']} "
        f"({a['route']}), prediction {a['prediction_id']}",
        f"     why (log-odds): {top}, …",
        f"   try it: curl -s -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\",
        f"             -d '{json.dumps({'features': sample['request']['features']})[:60]}…' {serve}/predict",
    ]
    al = sample.get("aliases") or {}
    live = ", ".join(f"{k} v{v}" for k, v in sorted(al.items()) if k != "challenger")
    lines.append(f"   live versions: {live}; traffic replayed with labels: {sample['traffic']['routes']}")
    if "canary" in al or "shadow" in al:
        lines.append(
            f"   the deploy DAG watches v{al.get('canary') or al.get('shadow')} on live figures for at most "
            f"{sample['window_minutes']:g} min: promoted once shown within every limit, rolled back once one is "
            "crossed (.venv/bin/ativo deployments)"
        )
    if sample.get("lineage"):
        lines.append(f"   .venv/bin/ativo lineage {a['prediction_id']} --spec {spec_name}:")
        lines += ["     " + line for line in sample["lineage"].splitlines()]
    return "\n".join(lines)


def banner(
    settings: Settings,
    summaries: dict[str, str],
    samples: dict[str, dict[str, Any] | None],
    waiting: dict[str, str] | None = None,
) -> str:
    """Where to look, printed at the end of `make run`: every spec's results and a decision of its champion.

    ``waiting``: the specs that had no demo lifecycle (no reference data to make batches of), with what was done.
    """
    pw = admin_password(settings)
    key = demo_key(settings)
    waiting = waiting or {}
    results = "\n".join(f"  {name}\n{text}" for name, text in summaries.items())
    serving = "\n".join(
        f"   {name}: {waiting[name]}" if name in waiting else _sample_text(settings, name, samples.get(name), key)
        for name in summaries
    )
    models = ", ".join(f"/models/{name}/" for name in summaries)
    return f"""
================================================================================
 Ativo is running
   Airflow UI     {url("airflow", settings)}      login: admin / {pw}
                  (also operator: role op, may file erasures; analyst: role user; passwords in
                  {settings.airflow_home / "passwords.json"})
   MLflow UI      {url("mlflow", settings)}      (experiments ativo/<spec>, registered models)
   Inference API  {url("serve", settings)}      API key: {key}
                  {models} (predict explain feedback need the key; health metrics do not)
   Ativo CLI      commands that change state (promote, rollback, budget set, erase, …) need an op key:
                  .venv/bin/ativo api-key create $USER --role op   (the first one, as the owner of {settings.home})
                  then export ATIVO_OP_KEY=<the key it printed>
   On-call pages  {settings.home / "logs" / "alerts.jsonl"}
   Object store   {settings.store_uri}
   Data registry  {settings.registry_path}   (git tags <spec>-vNNNN, DVC remote {settings.dvc_remote})
   Logs           {settings.home / "logs"}
 Results
{results}
 Serving
{serving}
 Try       make demo-drift (drift → retraining → canary), make demo-erasure (erase a customer → receipt)
 Stop everything with `make stop`.
================================================================================"""
