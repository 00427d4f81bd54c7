"""The model card: one self-contained HTML page per model version, from its gate report.

It shows the verdict and every gate's values, thresholds and reason; charts of the per-group rates, calibration,
global importance and the attack results; the mitigation's before/after when the spec turned it on; and the
lineage (dataset version, commit, study, trial). Only aggregates appear: no row of data is ever written into it.
"""

from __future__ import annotations

import html
from typing import Any

from ativo.report import finite, grouped_bars, hbars, line_chart
from ativo.spec import ModelSpec

RATES = (("selection_rate", "selection rate"), ("tpr", "TPR"), ("fpr", "FPR"))


def group_chart(view: str, data: dict[str, Any]) -> str:
    """Selection rate, TPR and FPR per group of one view (groups too small to judge are faded and hatched)."""
    groups = {str(g): d for g, d in (data.get("groups") or {}).items()}
    names = list(groups)
    return grouped_bars(
        f"{view}: rates per group",
        names,
        [(label, [groups[g].get(key) for g in names]) for key, label in RATES],
        y_label="rate",
        faded=[not groups[g].get("judged", True) for g in names],
        faded_label="too few rows to judge",
        notes=[f"{groups[g]['rows']:,} rows" if finite(groups[g].get("rows")) else "" for g in names],
        y_range=(0.0, 1.0),
    )


def calibration_chart(table: list[dict[str, float]]) -> str:
    """Reliability diagram: observed positive rate against mean predicted probability per bin."""
    return line_chart(
        "Calibration (test set)",
        [
            (
                b.get("mean_predicted"),
                b.get("observed_rate"),
                f"{int(b['rows']):,} rows" if finite(b.get("rows")) else "",
            )
            for b in table
        ],
        x_label="mean predicted probability",
        y_label="observed positive rate",
        diagonal="perfect",
    )


def importance_chart(importance: dict[str, float]) -> str:
    """Mean |SHAP contribution| per feature, largest on top."""
    return hbars(
        "Global importance",
        list(importance.items()),
        x_label="mean |SHAP contribution| (log-odds)",
    )


def attack_chart(rows: list[tuple[str, float, float | None]]) -> str:
    """Measured attack and stress figures against their limits (a bar beyond its limit is red)."""
    return hbars(
        "Attacks and stress tests (black mark: limit)",
        [(name, value) for name, value, _ in rows],
        x_label="rate",
        limits=[limit for _, _, limit in rows],
    )


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):
        return ", ".join(f"{k} {_fmt(x)}" for k, x in v.items())
    return html.escape(str(v))


def _checks_table(report: dict[str, Any]) -> str:
    """Every judged check: its estimate, confidence interval and rows beside its limit, and its verdict."""
    from ativo.evaluate.results import GateResult

    rows = []
    for name, g in report["gates"].items():
        result = GateResult.from_dict(g)
        for check_name in result.thresholds:
            c = result.check(check_name)
            if c is None or c.limit is None:
                continue
            interval = (
                f"[{_fmt(c.low)}, {_fmt(c.high)}]" if c.low is not None and c.high is not None else "(point estimate)"
            )
            conf = f"{c.confidence:.0%}" if c.confidence is not None else ""
            rows_n = str(c.rows) if c.rows is not None else ""
            verdict = (
                '<b class="fail">insufficient evidence</b>'
                if c.insufficient
                else '<b class="pass">ok</b>'
                if c.passed
                else '<b class="fail">beyond the limit</b>'
            )
            rows.append(
                f"<tr><td>{html.escape(name)}</td><td>{html.escape(check_name)}</td><td>{_fmt(c.value)}</td>"
                f"<td>{interval}</td><td>{conf}</td><td>{rows_n}</td>"
                f"<td>{'≤' if c.kind == 'max' else '≥'} {_fmt(c.limit)}</td><td>{verdict}</td></tr>"
            )
    if not rows:
        return ""
    return (
        "<p>Each check is judged on its confidence interval: it fails only when the interval lies beyond the limit "
        "(the data shows it crossed), and as insufficient evidence when its rows are too few to decide.</p>"
        "<table><tr><th>gate</th><th>check</th><th>estimate</th><th>interval</th><th>confidence</th><th>rows</th>"
        "<th>limit</th><th>verdict</th></tr>" + "".join(rows) + "</table>"
    )


def _gate_table(report: dict[str, Any]) -> str:
    rows = []
    for name, g in report["gates"].items():
        measured = "<br>".join(
            f"{html.escape(k)}: {_fmt(v)}" for k, v in g["metrics"].items() if not isinstance(v, dict | list)
        )
        limits = "<br>".join(f"{html.escape(k)}: {_fmt(v)}" for k, v in g["thresholds"].items())
        verdict = '<b class="pass">PASS</b>' if g["passed"] else '<b class="fail">FAIL</b>'
        rows.append(
            f"<tr><td>{name}</td><td>{verdict}</td><td>{measured}</td><td>{limits}</td>"
            f"<td>{html.escape(g['reason'])}</td><td>{g.get('seconds', 0):.1f} s</td></tr>"
        )
    return (
        "<table><tr><th>gate</th><th>verdict</th><th>measured</th><th>limits</th><th>reason</th><th>time</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _mitigation(m: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{_fmt(m['before'][k])}</td><td>{_fmt(m['after'].get(k))}</td></tr>"
        for k in m["before"]
    )
    rows += f"<tr><td>accuracy</td><td>{_fmt(m['accuracy_before'])}</td><td>{_fmt(m['accuracy_after'])}</td></tr>"
    return (
        f"<h2>Fairness mitigation: {html.escape(m['kind'])} ({html.escape(m['constraint'])})</h2>"
        "<p>Per-group thresholds fitted on the validation set, judged on the test set; serving applies the "
        "decision policy logged beside this card.</p>"
        f"<table><tr><th>metric</th><th>before</th><th>after</th></tr>{rows}</table>"
    )


def render_card(spec: ModelSpec, report: dict[str, Any]) -> str:
    """The model card as one self-contained HTML page (charts inline as SVG)."""
    g = report["gates"]
    parts = [f"<h1>Model card: {html.escape(report['model'])} version {html.escape(str(report['version']))}</h1>"]
    verdict = (
        "passed every gate: registry alias <b>challenger</b>"
        if report["passed"]
        else f"<b class='fail'>rejected</b> by {', '.join(report['failed_gates'])}"
    )
    parts.append(f"<p class='verdict'>Verdict: {verdict} (decided {html.escape(report['decided_at'])}).</p>")
    parts.append(f"<p>{html.escape(spec.description)}</p>")
    approval = report.get("approval")
    if approval:  # four eyes (deploy.approval: required): who asked, who approved, when
        parts.append(
            f"<p class='approval'>Approved for live traffic by <b>{html.escape(str(approval['approved_by']))}"
            f"</b> at {html.escape(str(approval['at']))}, requested by "
            f"{html.escape(str(approval['requested_by']))}.</p>"
        )
    lineage = {
        k: report.get(k)
        for k in ("dataset_version", "git_commit", "study", "trial_number", "run_id", "model_sha256", "spec_hash")
    }
    parts.append(
        "<h2>Lineage</h2><table>"
        + "".join(f"<tr><th>{k}</th><td><code>{html.escape(str(v))}</code></td></tr>" for k, v in lineage.items())
        + "</table>"
    )
    held = report.get("evaluated_on") or {}
    if held.get("sample"):
        counts = ", ".join(f"{p} {held['rows'][p]:,} of {held['of'][p]:,}" for p in ("train", "valid", "test"))
        parts.append(
            f"<p class='sample'>Trained on every row with <code>compute.engine: {html.escape(held['engine'])}"
            f"</code>; judged on a seeded sample (seed {held['seed']}): {html.escape(counts)} rows.</p>"
        )
    parts.append("<h2>Gates</h2>" + _gate_table(report))
    parts.append("<h2>Estimates and limits</h2>" + _checks_table(report))
    charts = []
    calibration = g["performance"].get("details", {}).get("calibration")
    if calibration:
        charts.append(calibration_chart(calibration))
    importance = g["explainability"].get("details", {}).get("importance")
    if importance:
        charts.append(importance_chart(importance))
    stress = []
    rob = g["robustness"]
    for key in ("perturbation_flip_rate", "attack_success_rate", "counterfactual_flip_rate"):
        if rob["metrics"].get(key) is not None:
            limit = rob["thresholds"].get(key, {}).get("max")
            stress.append((key.replace("_", " "), float(rob["metrics"][key]), limit))
    adv = g["privacy"]["metrics"].get("membership_advantage")
    if adv is not None:
        stress.append(
            ("membership advantage", float(adv), g["privacy"]["thresholds"].get("membership_advantage", {}).get("max"))
        )
    if stress:
        charts.append(attack_chart(stress))
    parts.append("<h2>Performance, explanations, attacks</h2><div class='charts'>" + "".join(charts) + "</div>")
    views = g["fairness"].get("details", {}).get("views") or {}
    if views:
        parts.append(
            "<h2>Fairness per group (test set)</h2><div class='charts'>"
            + "".join(group_chart(v, d) for v, d in views.items())
            + "</div>"
        )
    mitigation = g["fairness"].get("details", {}).get("mitigation")
    if mitigation:
        parts.append(_mitigation(mitigation))
        after = mitigation.get("views_after") or {}
        parts.append(
            "<div class='charts'>"
            + "".join(group_chart(f"{v} (after mitigation)", d) for v, d in after.items())
            + "</div>"
        )
    style = (
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;"
        "margin:.5em 0}td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;font-size:13px;"
        "text-align:left}.pass{color:#1e8449}.fail{color:#c0392b}.charts{display:flex;flex-wrap:wrap;gap:1em;"
        "align-items:flex-start}"
        ".charts svg{max-width:100%;height:auto}"
    )
    title = f"{report['model']} v{report['version']} model card"
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>{''.join(parts)}</body></html>"
    )
