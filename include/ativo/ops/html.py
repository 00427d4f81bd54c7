"""HTML of the Ativo page: server-rendered, every value escaped, no script (it loads inside Airflow's UI frame)."""

from __future__ import annotations

import datetime as dt
from datetime import tzinfo
from html import escape
from typing import Any
from urllib.parse import quote, urlencode

from ativo.ops import charts

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;padding:16px 24px;color:#1d2433;
background:#fff;font-size:14px}h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;
border-bottom:1px solid #dfe3ea;padding-bottom:4px}h3{font-size:14px;margin:14px 0 6px}
table{border-collapse:collapse;margin:4px 0 10px;min-width:50%}th,td{border:1px solid #dfe3ea;padding:4px 8px;
text-align:left;vertical-align:top}th{background:#f4f6f9;font-weight:600}.muted{color:#6b7385}
.ok{color:#137333;font-weight:600}.bad{color:#b3261e;font-weight:600}.warn{color:#a05a00;font-weight:600}
.bar{display:inline-block;height:9px;background:#e6e9ef;width:120px;vertical-align:middle;border-radius:3px}
.bar span{display:block;height:9px;border-radius:3px}form.inline{display:inline-flex;gap:6px;align-items:center;
margin:4px 0}input,button{font:inherit;padding:3px 6px}.note{padding:8px 12px;border-radius:4px;margin:8px 0}
.note.ok{background:#e6f4ea}.note.bad{background:#fce8e6}nav a{margin-right:14px}pre{background:#f4f6f9;
padding:8px;overflow:auto}code{background:#f4f6f9;padding:0 3px}.nowrap{white-space:nowrap}
.wrap{max-width:100%;overflow-x:auto}.wrap table{min-width:0}td{overflow-wrap:anywhere;max-width:48ch}
td.t,th.t{white-space:nowrap;overflow-wrap:normal}time{white-space:nowrap}
.strip{display:grid;grid-template-columns:repeat(auto-fit,minmax(300px,1fr));gap:10px;margin:8px 0 4px}
.card{border:1px solid #dfe3ea;border-radius:6px;padding:8px 12px;background:#fafbfc}.card h3{margin:0 0 6px}
.card dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 10px;margin:0}.card dt{color:#6b7385}
.card dd{margin:0;overflow-wrap:anywhere}.charts{display:flex;flex-wrap:wrap;gap:12px;margin:6px 0}
details>summary{cursor:pointer;margin:6px 0}.asof{float:right;color:#6b7385}
ul.tree,ul.tree ul{list-style:none;padding-left:18px;border-left:1px solid #dfe3ea;margin:4px 0}
ul.tree li{margin:6px 0}ul.tree li>div{margin-left:4px}
"""

REFRESH_S = 60
"""The page reloads itself this often (a meta refresh: the page runs no script)."""
TRIALS_SHOWN = 5
"""Trial rows a search shows before its fold."""


def e(value: Any) -> str:
    """``value`` as escaped text (None as an em dash)."""
    return "—" if value is None else escape(str(value))


def report_link(ref: str | None, label: str) -> str:
    """A link that opens a stored report, card or receipt by its reference, never by where it lies.

    As ``reports/run/<run id>/gates/gate_report.json``.
    """
    if not ref:
        return "—"
    return f'<a href="reports/{quote(ref)}">{e(label)}</a>'


def when(iso: str | None) -> str:
    """A stored instant as ``2026-12-07 19:50 UTC`` on one line; the exact instant in its title (None: a dash)."""
    if not iso:
        return "—"
    try:
        at = dt.datetime.fromisoformat(str(iso))
    except ValueError:
        return e(iso)
    at = (at if at.tzinfo else at.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
    return f'<time datetime="{e(iso)}" title="{e(iso)}">{at:%Y-%m-%d %H:%M} UTC</time>'


def ago(iso: str | None, now: str | None) -> str:
    """How long before ``now`` the instant ``iso`` was (``42 min``, ``3 h 20 min``, ``2 d 4 h``); empty if unknown."""
    try:
        seconds = (dt.datetime.fromisoformat(str(now)) - dt.datetime.fromisoformat(str(iso))).total_seconds()
    except (TypeError, ValueError):
        return ""
    minutes = max(int(seconds // 60), 0)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours < 48 else f"{hours // 24} d {hours % 24} h"


def usd(amount: float | None) -> str:
    """USD with the precision its size needs: 1,234 · 12.50 · 0.73 · 0.0042."""
    if amount is None:
        return "—"
    size = abs(amount)
    if size >= 1000:
        return f"{amount:,.0f}"
    if size >= 1 or size == 0:
        return f"{amount:.2f}"
    if size >= 0.01:
        return f"{amount:.3f}".rstrip("0")
    return f"{amount:.2g}"


def _table(headers: list[str], rows: list[list[str]], empty: str, times: tuple[int, ...] = ()) -> str:
    """A table in a wrapper that scrolls sideways on a narrow screen; the columns in ``times`` never wrap."""
    if not rows:
        return f'<p class="muted">{e(empty)}</p>'
    head = "".join(f"<th{' class=t' if i in times else ''}>{e(h)}</th>" for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(f"<td{' class=t' if i in times else ''}>{c}</td>" for i, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f'<div class="wrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _error(section: Any) -> str | None:
    if isinstance(section, dict) and "error" in section:
        return f'<p class="bad">could not read this section: {e(section["error"])}</p>'
    return None


def _bar(ratio: float | None) -> str:
    if ratio is None:
        return '<span class="muted">no limit</span>'
    pct = max(0.0, min(ratio, 1.0)) * 100
    color = "#b3261e" if ratio >= 1 else "#e37400" if ratio >= 0.8 else "#137333"
    return f'<span class="bar"><span style="width:{pct:.0f}%;background:{color}"></span></span> {ratio * 100:.1f}%'


def _form(action: str, fields: list[tuple[str, str, str]], button: str, can_operate: bool) -> str:
    """A POST form for an action; without the op role it is shown disabled, saying why."""
    disabled = "" if can_operate else " disabled"
    inputs = "".join(
        f'<input type="hidden" name="{e(n)}" value="{e(v)}">'
        if v
        else f'<input name="{e(n)}" placeholder="{e(p)}" aria-label="{e(p)}"{disabled}>'
        for n, p, v in fields
    )  # a field with a value is fixed (the spec of its section), the others are typed in
    why = "" if can_operate else ' <span class="muted">(needs the op role)</span>'
    return (
        f'<form class="inline" method="post" action="actions/{e(action)}">{inputs}'
        f'<button type="submit"{disabled}>{e(button)}</button>{why}</form>'
    )


def spend_section(spend: Any, can_operate: bool) -> str:
    """Spend against budget per team this month, spend by spec, the alerts sent, and the raise-budget action."""
    if err := _error(spend):
        return err
    rows = []
    for t in spend:
        limit = t.get("limit_usd")
        ratio = (t["settled_usd"] / limit) if limit else None
        alerts = ", ".join(
            f"{e(a['threshold'])}% ({when(a['sent_at'])})" for a in t["alerts"] if a["period"] == t["period"]
        )
        rows.append(
            [
                e(t["team"]),
                e(t["period"]),
                usd(t["settled_usd"]),
                usd(t["reserved_usd"]),
                usd(limit),
                _bar(ratio),
                e(t.get("policy")),
                e(t["resets_on"]),
                alerts or "none",
            ]
        )
    out = _table(
        ["team", "month", "spent USD", "reserved USD", "limit USD", "used", "policy", "resets", "alerts sent"],
        rows,
        "No team has spent or been given a budget yet.",
        times=(7,),
    )
    out += '<div class="charts">' + "".join(spend_chart(t) for t in spend) + "</div>"
    detail = [
        [e(t["team"]), e(s["spec"]), e(s["period"]), usd(s["usd"]), f"{s['seconds']:.0f}", e(s["tasks"])]
        for t in spend
        for s in t["by_spec"]
    ]
    if detail:
        out += "<h3>By spec</h3>" + _table(["team", "spec", "month", "USD", "seconds", "tasks"], detail, "")
    out += "<h3>Raise a budget</h3>" + _form(
        "budget",
        [("team", "team", ""), ("limit_usd", "new limit USD", ""), ("reason", "reason", "")],
        "Set limit",
        can_operate,
    )
    return out


def spend_chart(team: dict[str, Any]) -> str:
    """A team's settled spend per day (the last days) against its budget's even daily pace (limit ÷ 30)."""
    limit = team.get("limit_usd")
    points = [(d["day"][5:], d["usd"]) for d in team.get("daily", [])]
    return charts.chart(
        f"{team['team']}: spend per day",
        points,
        x_label="day (UTC)",
        y_label="USD",
        bars=True,
        reference=None if not limit else limit / 30,
        reference_label="budget ÷ 30",
        fmt=usd,
    )


def leases_section(leases: Any) -> str:
    """The GPU leases held on every host."""
    if err := _error(leases):
        return err
    rows = [
        [
            e(r["host"]),
            e(r["device"]),
            e(r["holder"]),
            when(r["acquired_at"]),
            when(r["expires_at"]),
            '<span class="bad">expired</span>' if r["expired"] else '<span class="ok">active</span>',
        ]
        for r in leases
    ]
    return _table(
        ["host", "GPU", "holder", "acquired", "expires", "state"], rows, "No GPU is leased right now.", times=(3, 4)
    )


def searches_section(searches: Any) -> str:
    """The newest searches' trial tables (one row per trial slot)."""
    if err := _error(searches):
        return err
    if not searches:
        return "<p class='muted'>No search has run yet.</p>"
    parts = []
    for search in searches:
        rows = []
        for t in search["trials"]:
            state = t["state"]
            cls = "ok" if state == "complete" else "bad" if state in ("failed", "refused") else "muted"
            run = e(t["run_id"] or "")
            params = (t["label"] or "").split(" ", 1)[1] if " " in (t["label"] or "") else ""  # "#N a=1 b=2"
            rows.append(
                [
                    e(t["slot"]),
                    e("" if t["trial"] is None else f"#{t['trial']}"),
                    e(params),
                    f'<span class="{cls}">{e(state)}</span>'
                    + (f" — {e(t['reason'])}" if t["reason"] and state in ("failed", "refused") else ""),
                    e("" if t["value"] is None else f"{t['value']:.4f}"),
                    e("" if t["seconds"] is None else f"{t['seconds']:.1f} s"),
                    e(f"{t['worker']} (attempt {t['attempt']})"),
                    f"<code>{run}</code>",
                ]
            )
        headers = ["slot", "trial", "parameters", "state", "valid AUC", "time", "worker", "MLflow run"]
        table = _table(headers, rows[:TRIALS_SHOWN], "No trial has started.")
        if len(rows) > TRIALS_SHOWN:
            table += (
                f"<details><summary>{len(rows) - TRIALS_SHOWN} more trial slots</summary>"
                f"{_table(headers, rows[TRIALS_SHOWN:], '')}</details>"
            )
        parts.append(f"<h3>{e(search['study'])}</h3>{table}")
    latest = searches[0]
    chart = charts.chart(
        f"trial AUC: {latest['study']}",
        [(f"#{t['trial']}", t["value"]) for t in latest["trials"] if t["trial"] is not None],
        x_label="trial",
        y_label="valid AUC",
        fmt=lambda v: f"{v:.4f}",
    )
    return (
        f'<div class="charts">{chart}</div><details><summary>Trial tables of the last {len(searches)} '
        f"search{'es' if len(searches) != 1 else ''} (first {TRIALS_SHOWN} slots each)</summary>"
        + "".join(parts)
        + "</details>"
    )


def deployments_section(deployments: Any, datasets: Any, can_operate: bool) -> str:
    """Per spec: live versions by alias, the latest dataset version, and the promote and rollback actions."""
    if err := _error(deployments):
        return err
    out = []
    for d in deployments:
        spec = d["spec"]
        ds = datasets.get(spec) if isinstance(datasets, dict) and "error" not in datasets else None
        out.append(f'<h3 id="spec-{e(spec)}">{e(spec)}</h3>')
        if d.get("error"):
            out.append(f'<p class="bad">{e(d["error"])}</p>')
            continue
        order = ["champion", "canary", "shadow", "challenger", "previous"]
        live = sorted(d["aliases"].items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 99)
        out.append(
            _table(["alias", "version"], [[f"<b>{e(a)}</b>", e(v)] for a, v in live], "No version is registered yet.")
        )
        if ds:
            page = f"datasets/{quote(spec, safe='')}/{quote(str(ds['tag']), safe='')}"
            out.append(
                f'<p class="muted">latest dataset version: <a href="{page}">{e(ds["tag"])}</a> '
                f"({e(ds['rows'])} rows, {when(ds['at'])})</p>"
            )
        out.append(
            _form(
                "promote",
                [("spec", "spec", spec), ("version", "version", ""), ("reason", "reason", "")],
                "Promote to champion",
                can_operate,
            )
        )
        out.append(_form("rollback", [("spec", "spec", spec), ("reason", "reason", "")], "Roll back", can_operate))
    return "".join(out)


def history_section(deployments: Any) -> str:
    """Per spec: the latest deployment records (newest first)."""
    if err := _error(deployments):
        return err
    out = []
    for d in deployments:
        if d.get("error"):
            continue  # said under Live versions
        out.append(f"<h3>{e(d['spec'])}</h3>")
        out.append(
            _table(
                ["at", "action", "version", "actor", "reason"],
                [[when(r["at"]), e(r["action"]), e(r["version"]), e(r["actor"]), e(r["reason"])] for r in d["history"]],
                "No deployment yet.",
                times=(0,),
            )
        )
    return "".join(out)


def monitor_section(monitor: Any) -> str:
    """The latest monitored window of each spec and its decision."""
    if err := _error(monitor):
        return err
    rows, pictures = [], []
    for m in monitor:
        r, champion = m["latest"], m.get("champion")
        live = f"<b>{e(champion)}</b>" if champion else '<span class="muted">none</span>'
        if r is None:
            rows.append([e(m["spec"]), live, '<span class="muted">never monitored</span>', "", "", "", "", ""])
            continue
        windows = m.get("windows") or []
        pictures.append(
            charts.chart(
                f"{m['spec']}: largest feature PSI",
                [(w["end"][5:10] if w["end"] else "?", w["psi"]) for w in windows],
                x_label="window end",
                y_label="PSI",
            )
            + charts.chart(
                f"{m['spec']}: AUC (estimated until labelled)",
                [(w["end"][5:10] if w["end"] else "?", w["auc"]) for w in windows],
                x_label="window end",
                y_label="AUC",
                fmt=lambda v: f"{v:.3f}",
            )
        )
        decision = f"{e(r['decision'])}: {e(r['reason'])}"
        if champion and str(r["version"] or "") != str(champion):
            # a window judged before this champion went live recorded another version (or none): say what serves
            judged = f"version {e(r['version'])}" if r["version"] else "no version"
            decision = (
                f'<span class="warn">judged {judged}; champion {e(champion)} serves now and is judged from the next '
                f"window</span><br>{decision}"
            )
        state = (
            '<span class="bad">drift</span>'
            if r["drifted"]
            else '<span class="ok">no drift</span>'
            if r["judged"]
            else '<span class="muted">too few rows</span>'
        )
        rows.append(
            [
                e(m["spec"]),
                live,
                e(r["version"]),
                f"{when(r.get('window_start'))} →<br>{when(r.get('window_end'))}",
                e(r["rows"]),
                state,
                decision,
                report_link(r.get("report_ref"), "report"),
            ]
        )
    table = _table(
        ["spec", "champion", "judged version", "window", "rows", "state", "decision", "report"],
        rows,
        "No spec.",
        times=(3,),
    )
    return table + (f'<div class="charts">{"".join(pictures)}</div>' if pictures else "")


def quarantine_section(quarantine: Any) -> str:
    """Quarantined batches with their reasons and reports."""
    if err := _error(quarantine):
        return err
    rows = [
        [
            e(q["spec"]),
            e(q["partition"]),
            "<br>".join(e(r) for r in q["reasons"][:6])
            + (f' <span class="muted">(+{len(q["reasons"]) - 6} more)</span>' if len(q["reasons"]) > 6 else ""),
            report_link(q.get("report_ref"), "validation report"),
            when(q["at"]),
        ]
        for q in quarantine
    ]
    return _table(
        ["spec", "day", "reasons", "report", "quarantined"], rows, "Nothing is in quarantine.", times=(1, 3, 4)
    )


def erasure_section(erasure: Any) -> str:
    """Erasure requests (never their subjects) and their receipts."""
    if err := _error(erasure):
        return err
    rows = []
    for r in erasure:
        status = {"closed": "ok", "open": "bad"}.get(r["status"], "warn")
        receipt = (
            f'<a href="erasure/receipts/{quote(r["spec"])}/{quote(r["request_id"], safe="")}">receipt</a>'
            if r["status"] == "closed"
            else "—"
        )
        rows.append(
            [
                e(r["request_id"]),
                e(r["spec"]),
                f'<span class="{status}">{e(r["status"])}</span>',
                e(r["channel"]),
                e(r["actor"]),
                e(r["subjects"]),
                e(r["batch"]),
                when(r["received_at"]),
                when(r["closed_at"]),
                e(r["reason"]),
                receipt,
            ]
        )
    return _table(
        [
            "request",
            "spec",
            "status",
            "channel",
            "actor",
            "subjects",
            "batch",
            "received",
            "closed",
            "reason",
            "receipt",
        ],
        rows,
        "No erasure request has been filed.",
        times=(7, 8),
    )


def incidents_section(incidents: Any, can_operate: bool) -> str:
    """Recorded incidents (the regression sets) and the form that records one."""
    if err := _error(incidents):
        return err
    rows = [
        [
            e(i["id"]),
            e(i["spec"]),
            f'<a href="?prediction_id={quote(i["prediction_id"])}#lineage">{e(i["prediction_id"])}</a>',
            e(i["decision"]),
            e(i["expected"]),
            f"{i['score']:.3f}",
            e(i["model_version"]),
            e(i["note"]),
            e(i["actor"]),
            when(i["at"]),
        ]
        for i in incidents
    ]
    table = _table(
        ["case", "spec", "prediction", "decided", "expected", "score", "version", "note", "by", "at"],
        rows,
        "No incident is recorded: every candidate passes the regression gate.",
        times=(9,),
    )
    form = _form(
        "incident",
        [
            ("prediction_id", "prediction id", ""),
            ("expected", "expected label (0/1)", ""),
            ("note", "what was wrong", ""),
        ],
        "Record incident",
        can_operate,
    )
    return table + "<h3>Record an incident</h3>" + form


def lineage_section(result: dict[str, Any] | None, prediction_id: str) -> str:
    """The lookup form and, after a lookup, the chain of the decision."""
    form = (
        f'<form class="inline" method="get" action="./#lineage"><input name="prediction_id" size="48" '
        f'placeholder="prediction id from /predict" aria-label="prediction id" value="{e(prediction_id)}">'
        f'<button type="submit">Trace</button></form>'
    )
    if result is None:
        return form
    if "error" in result:
        return form + f'<p class="bad">{e(result["error"])}</p>'
    return form + lineage_tree(result.get("tree") or [])


def lineage_tree(tree: list[dict[str, Any]]) -> str:
    """The chain as a nested list, prediction outermost, each link with its facts and where to open it.

    The nodes are :func:`ativo.ops.views.lineage_tree`'s.
    """
    out = ""
    for node in reversed(tree):
        links = " · ".join(
            f'<a href="{e(link["href"])}" rel="noopener">{e(link["label"])}</a>' for link in node["links"]
        )
        lines = "".join(f'<div class="muted">{e(line)}</div>' for line in node["lines"])
        inner = f"<ul>{out}</ul>" if out else ""
        out = (
            f'<li class="node node-{e(node["kind"])}"><b>{e(node["title"])}</b>'
            + (f"<div>{links}</div>" if links else "")
            + lines
            + inner
            + "</li>"
        )
    return f'<ul class="tree">{out}</ul>' if out else ""


DECISION_CLASS = {"no_drift": "ok", "not_judged": "muted", "waiting": "warn", "emitted": "bad"}
"""How the strip colours a monitor decision (held_* are warnings)."""


def status_card(s: dict[str, Any], as_of: str | None) -> str:
    """One spec's card of the status strip."""
    unread = '<span class="bad">could not read</span>'
    if s.get("deployments_error"):
        serving = trial = unread
    else:
        serving = f"<b>version {e(s['champion'])}</b>" if s.get("champion") else '<span class="warn">none</span>'
        t = s.get("trial")
        if t:
            share = f" on {t['percent']:g} % of callers" if isinstance(t.get("percent"), int | float) else ""
            watched = ago(t.get("since"), as_of)
            trial = f"{e(t['alias'])} <b>version {e(t['version'])}</b>{e(share)}" + (
                f", watched {e(watched)} (since {when(t['since'])})" if watched else ""
            )
        else:
            trial = '<span class="muted">none</span>'
    m = s.get("monitor")
    if not s.get("monitor_read", True):
        monitor = unread
    elif m is None:
        monitor = '<span class="muted">never monitored</span>'
    else:
        cls = DECISION_CLASS.get(m["decision"], "warn")
        monitor = f'<span class="{cls}" title="{e(m["reason"])}">{e(m["decision"])}</span> at {when(m["at"])}'
    opened = s.get("erasure_open")
    erasure = (
        unread
        if opened is None
        else f'<span class="{"bad" if opened else "ok"}">{opened} open request{"" if opened == 1 else "s"}</span>'
    )
    days, window = s.get("quarantine_days"), s.get("quarantine_window_days", 7)
    quarantined = (
        unread
        if days is None
        else f'<span class="{"warn" if days else "ok"}">{days} of the last {e(window)} days</span>'
    )
    sp = s.get("spend")
    if not s.get("spend_read", True):
        spend = unread
    elif sp is None:
        spend = f'{e(s["team"])}: <span class="muted">nothing spent, no budget</span>'
    else:
        limit = sp.get("limit_usd")
        ratio = sp["settled_usd"] / limit if limit else None
        spend = (
            f"{e(sp['team'])}: {usd(sp['settled_usd'])} of {usd(limit) if limit else 'no limit'} USD "
            f"({e(sp['period'])}) {_bar(ratio) if limit else ''}"
        )
    rows = (
        ("champion", serving),
        ("on trial", trial),
        ("last monitor decision", monitor),
        ("erasure", erasure),
        ("quarantine", quarantined),
        ("spend", spend),
    )
    items = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
    return f'<div class="card"><h3><a href="#spec-{e(s["spec"])}">{e(s["spec"])}</a></h3><dl>{items}</dl></div>'


def status_section(status: Any, as_of: str | None) -> str:
    """The status strip: one compact card per spec."""
    if err := _error(status):
        return err
    if not status:
        return '<p class="muted">No spec is loaded.</p>'
    return '<div class="strip">' + "".join(status_card(s, as_of) for s in status) + "</div>"


def page(
    sections: dict[str, Any],
    *,
    user: str,
    role: str | None,
    can_operate: bool,
    notice: str | None = None,
    notice_ok: bool = True,
    lineage: dict[str, Any] | None = None,
    prediction_id: str = "",
) -> str:
    """The whole Ativo page."""
    note = f'<div class="note {"ok" if notice_ok else "bad"}" role="status">{e(notice)}</div>' if notice else ""
    problems = "".join(f'<p class="bad">spec error: {e(p)}</p>' for p in sections.get("spec_errors", []))
    nav = "".join(
        f'<a href="#{k}">{t}</a>'
        for k, t in (
            ("status", "Status"),
            ("live", "Live versions"),
            ("deployments", "Deployments"),
            ("monitor", "Monitor"),
            ("quarantine", "Quarantine"),
            ("erasure", "Erasure"),
            ("spend", "Spend"),
            ("leases", "GPU leases"),
            ("incidents", "Incidents"),
            ("lineage", "Lineage"),
            ("searches", "Searches"),
        )
    )
    as_of = sections.get("as_of")
    deployments = sections.get("deployments", [])
    body = (
        f'<p class="asof">as of {when(as_of)} · refreshes every {REFRESH_S} s</p>'
        f'<h1>Ativo</h1><p class="muted">signed in as {e(user)} (role {e(role)}); specs: '
        f'{e(", ".join(sections.get("specs", [])) or "none")} · <a href="runbooks/">runbooks</a> · '
        f'<a href="audit">audit log</a> · <a href="metrics">metrics</a></p><nav>{nav}</nav>{note}{problems}'
        f'<h2 id="status">Status</h2>{status_section(sections.get("status", []), as_of)}'
        f'<h2 id="live">Live versions</h2>'
        f"{deployments_section(deployments, sections.get('datasets', {}), can_operate)}"
        f'<h2 id="deployments">Deployments</h2>{history_section(deployments)}'
        f'<h2 id="monitor">Monitor</h2>{monitor_section(sections.get("monitor", []))}'
        f'<h2 id="quarantine">Quarantined batches</h2>{quarantine_section(sections.get("quarantine", []))}'
        f'<h2 id="erasure">Erasure requests</h2>{erasure_section(sections.get("erasure", []))}'
        f'<h2 id="spend">Spend against budget</h2>{spend_section(sections.get("spend", []), can_operate)}'
        f'<h2 id="leases">GPU leases</h2>{leases_section(sections.get("leases", []))}'
        f'<h2 id="incidents">Incidents (regression set)</h2>'
        f"{incidents_section(sections.get('incidents', []), can_operate)}"
        f'<h2 id="lineage">Lineage of a decision</h2>{lineage_section(lineage, prediction_id)}'
        f'<h2 id="searches">Searches (trial tables)</h2>{searches_section(sections.get("searches", []))}'
    )
    # a page that looked something up or says what an action did is not reloaded under the reader
    return document("Ativo", body, refresh=None if (notice or lineage) else REFRESH_S)


def _cut(text: str, width: int) -> str:
    """``text`` escaped, cut to ``width`` characters; the whole value in the title attribute when it was cut."""
    if len(text) <= width:
        return e(text)
    return f'<span title="{e(text)}">{e(text[: width - 1])}…</span>'


def _local_time(iso: str | None, tz: tzinfo) -> str:
    """A UTC ISO instant as ``YYYY-MM-DD HH:MM:SS ZONE`` in ``tz``, on one line; the UTC instant in its title."""
    if not iso:
        return "—"
    try:
        at = dt.datetime.fromisoformat(iso).astimezone(tz)
    except ValueError:
        return e(iso)
    shown = at.strftime("%Y-%m-%d %H:%M:%S ") + (at.tzname() or at.strftime("%z"))
    return f'<time class="nowrap" datetime="{e(iso)}" title="{e(iso)}">{e(shown)}</time>'


def audit_page(data: dict[str, Any], *, user: str, role: str | None, tz: tzinfo) -> str:
    """The audit log view: the chain's verdict first, the filter form, then the newest matching rows.

    Every value is escaped (actors, refs and reasons are whatever a caller typed); values longer than a cell keep
    their whole text in a title attribute; times are shown in ``tz``.
    """
    from ativo.audit import one_line

    chain, filters = data["chain"], data["filters"]
    if chain["ok"]:
        verdict = f'<div class="note ok" role="status">chain intact: {chain["rows"]} rows verified</div>'
    else:
        shown = "".join(f"<li>{e(p)}</li>" for p in chain["problems"][:10])
        more = len(chain["problems"]) - 10
        verdict = (
            f'<div class="note bad" role="alert"><b>chain BROKEN at row {e(chain["first_bad"])}</b> '
            f"({len(chain['problems'])} problem(s) in {chain['rows']} rows): a row was changed or removed after it "
            f"was written; every row from there on cannot be trusted.<ul>{shown}</ul>"
            + (f'<span class="muted">(+{more} more: <code>ativo audit --json</code>)</span>' if more > 0 else "")
            + "</div>"
        )
    options = "".join(f'<option value="{e(k)}">' for k in data.get("kinds", []))
    inputs = "".join(
        f'<input name="{n}" value="{e(filters.get(n, ""))}" placeholder="{p}" aria-label="{p}" maxlength="200"'
        + (' list="audit-kinds"' if n == "kind" else "")
        + ">"
        for n, p in (("kind", "kind"), ("actor", "actor"), ("spec", "spec or ref"))
    )
    query = urlencode({k: v for k, v in filters.items() if v})
    form = (
        f'<form class="inline" method="get" action="audit">{inputs}<datalist id="audit-kinds">{options}</datalist>'
        f'<button type="submit">Filter</button> <a href="audit">clear</a> · '
        f'<a href="api/audit{"?" + e(query) if query else ""}">as JSON</a></form>'
    )
    rows = [
        [
            (f'<span class="bad">{e(r["seq"])} ⚠</span>' if r["seq"] == chain["first_bad"] else e(r["seq"])),
            _local_time(r["at"], tz),
            e(r["kind"]),
            _cut(one_line(r["actor"]), 40),
            _cut(one_line(r["ref"]), 40),
            _cut(r["summary"], 120),
        ]
        for r in data["rows"]
    ]
    count = len(data["rows"])
    said = (
        f"the newest {count} rows that match; narrow the filters for older ones"
        if count >= data["limit"]
        else f"{count} row{'' if count == 1 else 's'} match"
    )
    zone = dt.datetime.now(tz).tzname() or str(tz)
    body = (
        f'<p><a href="./">Ativo</a> · signed in as {e(user)} (role {e(role)})</p><h1>Audit log</h1>'
        f'<p class="muted">Every erasure receipt, page action, audited command and refused attempt, each row chained '
        f"to the one before by its sha256. Times in {e(zone)}.</p>{verdict}{form}"
        f'<p class="muted">{e(said)}</p>'
        + _table(["row", "time", "kind", "actor", "spec / ref", "fields"], rows, "No audit row matches.")
    )
    return document("Ativo: audit log", body)


def dataset_page(data: dict[str, Any], *, home: str) -> str:
    """One dataset version: its facts, its days and the model versions trained on it (each with its card).

    ``data`` is :func:`ativo.ops.views.dataset_version`'s; ``home`` is the Ativo page's path, which its links start
    from. Every value is escaped.
    """
    days = data["days"]
    span = f"{days[0]} … {days[-1]}" if len(days) > 1 else (days[0] if days else "none")
    facts = [
        ("spec", f'<a href="{e(home)}#spec-{e(data["spec"])}">{e(data["spec"])}</a>'),
        ("version", e(data["version"]) + (' <span class="ok">(the latest)</span>' if data["latest"] else "")),
        ("rows", e(data["rows"])),
        ("days", f"{len(days)} ({e(span)})"),
        ("recorded", when(data["recorded_at"])),
        ("data-registry commit", f"<code>{e(data['data_registry_commit'])}</code>"),
        ("DVC manifest", f"<code>{e(data['manifest_sha256'])}</code>"),
    ]
    models = data["models"]
    if models is None:
        trained = '<p class="bad">could not read the model registry</p>'
    else:
        trained = _table(
            ["model version", "gates", "serving as", "test AUC", "model card"],
            [
                [
                    e(m["version"]),
                    f'<span class="{"ok" if m["gates"] == "passed" else "bad" if m["gates"] else "muted"}">'
                    f"{e(m['gates'] or 'not judged yet')}</span>",
                    e(m["alias"] or ""),
                    e("" if m["test_auc"] is None else f"{m['test_auc']:.4f}"),
                    f'<a href="{e(home)}reports/{quote(m["card_ref"])}">model card</a>' if m["card_ref"] else "—",
                ]
                for m in models
            ],
            "No model version was trained on this dataset version yet.",
        )
    body = (
        f'<p><a href="{e(home)}">Ativo</a></p><h1>Dataset version {e(data["tag"])}</h1>'
        '<div class="card"><dl>' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts) + "</dl></div>"
        f"<h2>Days</h2><p>{', '.join(e(d) for d in days) or '—'}</p>"
        f"<h2>Model versions trained on it</h2>{trained}"
    )
    return document(f"Ativo: dataset {data['tag']}", body)


def document(title: str, body: str, refresh: int | None = None) -> str:
    """A complete HTML document with the page's style; reloaded every ``refresh`` seconds when given."""
    reload = f'<meta http-equiv="refresh" content="{int(refresh)}">' if refresh else ""
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">{reload}<title>{e(title)}</title>'
        f"<style>{STYLE}</style></head><body>{body}</body></html>"
    )
