"""On-call alerts: what each kind of page says (Slack-compatible payloads); :mod:`ativo.paging` posts them.

Every string a payload carries is bounded (:data:`ativo.paging.ALERT_CHARS`): an error that quotes a huge value
still makes a message of a readable size.
"""

from __future__ import annotations

import json
from typing import Any

from ativo import naming
from ativo.paging import bounded, stored_link


def failure_payload(
    *,
    dag_id: str,
    task_id: str,
    run_id: str,
    try_number: int | None,
    log_url: str | None,
    error: str | None,
    owner: str | None = None,
    runbook: str | None = None,
) -> dict[str, Any]:
    """A Slack-compatible message about a failed task (``text`` plus attachment fields)."""
    fields = [
        {"title": "DAG", "value": dag_id, "short": True},
        {"title": "Task", "value": task_id, "short": True},
        {"title": "Run", "value": run_id, "short": False},
        {"title": "Try", "value": str(try_number), "short": True},
        {"title": "Owner", "value": owner or "unknown", "short": True},
    ]
    if error:
        fields.append({"title": "Error", "value": error, "short": False})
    if log_url:
        fields.append({"title": "Log", "value": log_url, "short": False})
    if runbook:
        fields.append({"title": "Runbook", "value": runbook, "short": False})
    payload = {
        "text": f":red_circle: Ativo task failed: {dag_id}.{task_id} (run {run_id}, try {try_number})",
        "attachments": [{"color": "danger", "fallback": f"{dag_id}.{task_id} failed", "fields": fields}],
        "ativo": {
            "kind": "task_failed",
            "dag_id": dag_id,
            "task_id": task_id,
            "run_id": run_id,
            "try_number": try_number,
            "log_url": log_url,
            "error": error,
            "runbook_url": runbook,
        },
    }
    return bounded(payload)


def budget_payload(team: str, thresholds: list[int], status: dict[str, Any]) -> dict[str, Any]:
    """A Slack-compatible message: a team's budget crossed ``thresholds`` (in %) this period."""
    top = max(thresholds)
    limit, settled = status.get("limit_usd"), status.get("settled_usd", 0.0)
    text = (
        f":{'red_circle' if top >= 100 else 'warning'}: Ativo budget '{team}' passed {top}% for {status.get('period')}:"
        f" {settled:.2f} of {limit:.2f} USD spent; resets {status.get('resets_on')}"
    )
    fields = [
        {"title": "Team", "value": team, "short": True},
        {"title": "Thresholds crossed", "value": ", ".join(f"{t}%" for t in sorted(thresholds)), "short": True},
        {"title": "Spent", "value": f"{settled:.4f} USD", "short": True},
        {"title": "Limit", "value": f"{limit:.4f} USD", "short": True},
        {"title": "Policy", "value": str(status.get("policy")), "short": True},
        {"title": "Resets", "value": str(status.get("resets_on")), "short": True},
    ]
    payload = {
        "text": text,
        "attachments": [{"color": "danger" if top >= 100 else "warning", "fallback": text, "fields": fields}],
        "ativo": {"kind": "budget", "team": team, "thresholds": sorted(thresholds), "status": status},
    }
    return bounded(payload)


def rejection_payload(
    report: dict[str, Any], *, airflow_url: str | None = None, log_url: str | None = None
) -> dict[str, Any]:
    """A Slack-compatible message: a model version failed its gates (which, and why; the card and log as links)."""
    failed = [g for g in report["gates"].values() if not g["passed"]]
    text = (
        f":no_entry: Ativo model {report['model']} version {report['version']} rejected by "
        f"{len(failed)} gate(s): {', '.join(g['gate'] for g in failed)}"
    )
    fields = [{"title": g["gate"], "value": g["reason"][:700], "short": False} for g in failed]
    card = stored_link(report.get("model_card_uri"), airflow_url) if airflow_url else report.get("model_card_uri")
    fields.append({"title": "Model card", "value": str(card), "short": False})
    if log_url:
        fields.append({"title": "Log", "value": log_url, "short": False})
    fields.append({"title": "Dataset version", "value": str(report.get("dataset_version")), "short": True})
    payload = {
        "text": text,
        "attachments": [{"color": "warning", "fallback": text, "fields": fields}],
        "ativo": {
            "kind": "model_rejected",
            "model": report["model"],
            "version": report["version"],
            "failed_gates": [g["gate"] for g in failed],
            "model_card_url": card,
            "log_url": log_url,
        },
    }
    return bounded(payload)


def deploy_payload(spec_name: str, rec: dict[str, Any]) -> dict[str, Any]:
    """A Slack-compatible message: a candidate was rolled back (which version, why, the figures, the record)."""
    text = f":rewind: Ativo rolled back {rec.get('model', spec_name)} version {rec.get('version')}: {rec.get('reason')}"
    fields = [
        {"title": "Aliases now", "value": json.dumps(rec.get("aliases_after", {})), "short": True},
        {"title": "Record", "value": str(rec.get("uri")), "short": False},
    ]
    figures = rec.get("figures") or {}
    if figures:
        fields.append({"title": "Figures", "value": json.dumps(figures, default=str)[:700], "short": False})
    payload = {
        "text": text,
        "attachments": [{"color": "danger", "fallback": text, "fields": fields}],
        "ativo": {
            "kind": "model_rolled_back",
            "spec": spec_name,
            "version": rec.get("version"),
            "reason": rec.get("reason"),
        },
    }
    return bounded(payload)


def drift_payload(doc: dict[str, Any]) -> dict[str, Any]:
    """A Slack-compatible message from a monitoring run: drift announced for retraining, or held back (and why).

    ``doc`` is :func:`ativo.monitor.run.monitor_window`'s result.
    """
    d, a = doc["decision"], doc["assessment"]
    held = d["action"].startswith("held")
    window = f"{doc['window']['start']} → {doc['window']['end']}"
    if held:
        text = f":warning: Ativo {doc['spec']} version {doc['version']}: drift held back, no retraining: {d['reason']}"
    else:
        text = (
            f":chart_with_downwards_trend: Ativo {doc['spec']} version {doc['version']}: drift sustained, "
            f"retraining (episode {d['episode']})"
        )
    fields = [
        {"title": "Why", "value": "\n".join(a["reasons"])[:1500], "short": False},
        {"title": "Window", "value": f"{window} ({a['rows']} decisions)", "short": False},
        {"title": "Report", "value": str(doc.get("report_html_uri")), "short": False},
    ]
    if d["action"] == "held_budget":
        fields.append(
            {
                "title": "Next step",
                "value": "look at the report; raise the budget (ativo budget set …) "
                f"or retrain by hand (trigger {naming.train_dag_id(doc['spec'])}) if the model must follow the data",
                "short": False,
            }
        )
    elif held:
        fields.append(
            {
                "title": "Next step",
                "value": "the last retraining did not fix it: look at the report and "
                "that run's model card; promote a better version or retrain by hand "
                f"({naming.train_dag_id(doc['spec'])})",
                "short": False,
            }
        )
    payload = {
        "text": text,
        "attachments": [{"color": "danger" if held else "warning", "fallback": text, "fields": fields}],
        "ativo": {
            "kind": "drift_held" if held else "drift_retraining",
            "model": doc["spec"],
            "version": doc["version"],
            "decision": d["action"],
            "episode": d.get("episode"),
            "reasons": a["reasons"],
            "report": doc.get("report_html_uri"),
            "window": doc["window"],
        },
    }
    return bounded(payload)


def episode_given_up_payload(spec_name: str, episode: dict[str, Any]) -> dict[str, Any]:
    """A Slack-compatible message: a drift episode's retraining failed its last allowed attempt."""
    text = (
        f":warning: Ativo {spec_name}: drift episode {episode['id']} (version {episode['version']}) was not "
        f"retrained after {episode['attempt']} attempts: {episode['outcome']}"
    )
    fields = [
        {"title": "Why it drifted", "value": "\n".join(episode.get("reasons") or [])[:1500], "short": False},
        {"title": "Report", "value": str(episode.get("report_uri")), "short": False},
        {
            "title": "Next step",
            "value": f"fix what failed, then trigger {naming.train_dag_id(spec_name)} by hand",
            "short": False,
        },
    ]
    return bounded(
        {
            "text": text,
            "attachments": [{"color": "danger", "fallback": text, "fields": fields}],
            "ativo": {
                "kind": "drift_given_up",
                "model": spec_name,
                "episode": episode["id"],
                "version": episode["version"],
                "outcome": episode["outcome"],
            },
        }
    )


def erasure_payload(spec_name: str, kind: str, batch: int | None, requests: list[str], reason: str) -> dict[str, Any]:
    """A Slack-compatible message about erasure: a batch kept open, or requests past their SLA.

    ``kind`` is ``erasure_open`` or ``erasure_sla``. The message names requests, never subjects.
    """
    if kind == "erasure_sla":
        text = f":rotating_light: Ativo {spec_name}: {len(requests)} erasure request(s) past their SLA"
        step = (
            f"see `ativo erasure status REQUEST`; run the {naming.erasure_dag_id(spec_name)} DAG "
            '(conf {"force": true})'
        )
    else:
        text = f":rotating_light: Ativo {spec_name}: erasure batch {batch} is still open"
        step = (
            "the data purge is complete; fix what the reason names (a retrained model that fails its gates "
            f"needs a decision), then trigger {naming.erasure_dag_id(spec_name)} again: the batch resumes where it "
            "stopped"
        )
    fields = [
        {"title": "Requests", "value": ", ".join(requests)[:1500], "short": False},
        {"title": "Why", "value": reason[:1500], "short": False},
        {"title": "Next step", "value": step, "short": False},
    ]
    return bounded(
        {
            "text": text,
            "attachments": [{"color": "danger", "fallback": text, "fields": fields}],
            "ativo": {"kind": kind, "model": spec_name, "batch": batch, "requests": requests[:200], "reason": reason},
        }
    )


def incident_payload(case: dict[str, Any], lineage: dict[str, Any], airflow_url: str) -> dict[str, Any]:
    """A Slack-compatible page: a production decision was recorded as an incident (its lineage, what changes now)."""
    model, run, dataset = lineage.get("model", {}), lineage.get("run", {}), lineage.get("dataset", {})
    gates = lineage.get("gates", {})
    text = (
        f":mag: Ativo {case['spec']}: prediction {case['prediction_id']} recorded as incident {case['id']} — "
        f"decided {case['decision']} (score {case['score']:.3f}), expected {case['expected']}"
    )
    fields = [
        {"title": "Note", "value": case["note"], "short": False},
        {"title": "Model", "value": f"{model.get('name')} version {model.get('version')}", "short": True},
        {"title": "Run", "value": str(run.get("run_id")), "short": True},
        {"title": "Dataset version", "value": str(dataset.get("tag")), "short": True},
        {"title": "Code", "value": str((lineage.get("code") or {}).get("commit")), "short": True},
        {"title": "Model card", "value": str(stored_link(gates.get("model_card_uri"), airflow_url)), "short": False},
        {
            "title": "What changes",
            "value": "every later candidate must decide this case correctly (regression gate;"
            " gates.regression.max_wrong_fraction is the tolerance)",
            "short": False,
        },
    ]
    return bounded(
        {
            "text": text,
            "attachments": [{"color": "warning", "fallback": text, "fields": fields}],
            "ativo": {
                "kind": "incident_recorded",
                "model": case["spec"],
                "case": case["id"],
                "prediction_id": case["prediction_id"],
                "model_version": case["model_version"],
                "dataset_version": case["dataset_version"],
                "run_id": run.get("run_id"),
            },
        }
    )
