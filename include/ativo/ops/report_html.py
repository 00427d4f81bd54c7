"""Stored reports as HTML pages a person reads: the gate report, the validation report, the erasure receipt.

Each page links back to the Ativo page and to its raw JSON (``?format=json``); every value is escaped (a gate's
reason or an expectation's observed value may hold whatever a batch or a spec held). No page shows a subject id or
a host path.
"""

from __future__ import annotations

import json
from typing import Any

from ativo.ops.html import _table, document, e, when

FAILED_SHOWN = 50
"""Failed expectations a validation report page lists (the JSON holds them all)."""


def _dict(value: Any) -> dict[str, Any]:
    """``value`` when it is a mapping, else an empty one (stored reports are read as they are, never trusted)."""
    return value if isinstance(value, dict) else {}


def _num(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return e(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return e(value)


def _is_path(text: str) -> bool:
    """Whether ``text`` names where something lies (a URI or an absolute path), which a page never shows."""
    return "://" in text or text.startswith("/") or ":/" in text[:12]


def _head(title: str, home: str, subtitle: str = "") -> str:
    return f'<p><a href="{e(home)}">Ativo</a> · <a href="?format=json">raw JSON</a></p><h1>{e(title)}</h1>' + (
        f'<p class="muted">{e(subtitle)}</p>' if subtitle else ""
    )


def _verdict(ok: bool, yes: str, no: str) -> str:
    return f'<span class="{"ok" if ok else "bad"}">{e(yes if ok else no)}</span>'


def gate_report(doc: dict[str, Any], home: str) -> str:
    """A gate report: the verdict, then a table per gate (each check's estimate, interval, limit and verdict)."""
    from ativo.evaluate.results import GateResult

    gates = _dict(doc.get("gates"))
    summary = _table(
        ["gate", "verdict", "reason"],
        [
            [e(name), _verdict(bool(g.get("passed")), "pass", "fail"), e(g.get("reason"))]
            for name, g in gates.items()
            if isinstance(g, dict)
        ],
        "The report names no gate.",
    )
    parts = []
    for name, g in gates.items():
        if not isinstance(g, dict):
            continue
        rows = []
        try:
            result = GateResult.from_dict({"gate": name, "passed": False, "reason": "", **g})
            for check in result.thresholds:
                c = result.check(check)
                if c is None:
                    continue
                interval = (
                    f"[{_num(c.low)}, {_num(c.high)}] at {_num(c.confidence)}"
                    + (f" on {e(c.rows)} rows" if c.rows is not None else "")
                    if c.low is not None
                    else "—"
                )
                sign = "≤" if c.kind == "max" else "≥"
                verdict = (
                    '<span class="warn">insufficient evidence</span>'
                    if c.insufficient
                    else _verdict(c.passed, "ok", "fail")
                )
                rows.append([e(c.name), _num(c.value), interval, _num(c.bound), f"{sign} {_num(c.limit)}", verdict])
        except (TypeError, ValueError, KeyError, AttributeError) as err:  # an older report: say so, keep the rest
            rows = [[e(f"checks not readable: {err}"), "", "", "", "", ""]]
        table = _table(
            ["check", "estimate", "interval", "judged on", "limit", "verdict"], rows, "This gate judged no threshold."
        )
        parts.append(
            f"<h3>{e(name)}: {_verdict(bool(g.get('passed')), 'pass', 'fail')}</h3><p>{e(g.get('reason'))}</p>{table}"
        )
    head = _head(
        f"Gate report: {doc.get('model', '?')} version {doc.get('version', '?')}",
        home,
        f"spec {doc.get('spec', '?')} · dataset {doc.get('dataset_version', '?')} · run {doc.get('run_id', '?')} · "
        f"commit {doc.get('git_commit', '?')} · decided {doc.get('decided_at', '?')}",
    )
    verdict = (
        f'<div class="note {"ok" if doc.get("passed") else "bad"}" role="status">{e(doc.get("verdict"))}'
        + (f": failed {e(', '.join(map(str, doc.get('failed_gates') or [])))}" if doc.get("failed_gates") else "")
        + "</div>"
    )
    return document("Ativo: gate report", head + verdict + "<h2>Gates</h2>" + summary + "".join(parts))


def _observed(result: dict[str, Any]) -> str:
    """What an expectation saw, without the rows themselves (a partial list of unexpected values may hold PII)."""
    if "observed_value" in result:
        shown = json.dumps(result["observed_value"], default=str)
        return e(shown if len(shown) <= 200 else shown[:199] + "…")
    if "unexpected_count" in result:
        pct = result.get("unexpected_percent")
        return e(
            f"{result['unexpected_count']} unexpected" + (f" ({pct:.2f} %)" if isinstance(pct, int | float) else "")
        )
    return "—"


def validation_report(doc: dict[str, Any], home: str) -> str:
    """A validation report: the batch's reasons, how many expectations passed and failed, then the failed ones."""
    gx = _dict(doc.get("gx"))
    results = [r for r in gx.get("results") or [] if isinstance(r, dict)]
    failed = [r for r in results if not r.get("success")]
    stats = _dict(gx.get("statistics"))
    evaluated = stats.get("evaluated_expectations", len(results))
    passed = stats.get("successful_expectations", len(results) - len(failed))
    rows = []
    for r in failed[:FAILED_SHOWN]:
        config = _dict(r.get("expectation_config"))
        kwargs = _dict(config.get("kwargs"))
        rows.append(
            [
                e(config.get("type") or config.get("expectation_type")),
                e(kwargs.get("column") or kwargs.get("column_list")),
                _observed(_dict(r.get("result"))),
            ]
        )
    reasons = "".join(f"<li>{e(r)}</li>" for r in doc.get("reasons") or [])
    more = len(failed) - FAILED_SHOWN
    body = (
        _head(
            f"Validation report: {doc.get('spec', '?')} {doc.get('partition', '?')}",
            home,
            f"batch sha256 {doc.get('batch_sha256', '?')} · quarantined {doc.get('quarantined_at', '?')}",
        )
        + (f'<div class="note bad" role="status">rejected</div><h2>Reasons</h2><ul>{reasons}</ul>' if reasons else "")
        + f"<h2>Expectations</h2><p><b>{e(evaluated)}</b> evaluated: "
        f'<span class="ok">{e(passed)} passed</span>, <span class="{"bad" if failed else "ok"}">'
        f"{len(failed)} failed</span></p>"
        + _table(["expectation", "column", "observed"], rows, "No expectation of the suite failed.")
        + (f'<p class="muted">(+{more} more failed: see the raw JSON)</p>' if more > 0 else "")
    )
    return document("Ativo: validation report", body)


def erasure_receipt(receipt: dict[str, Any], verified: dict[str, Any] | None, home: str) -> str:
    """An erasure receipt: the request, how many subjects (never who), what was purged where.

    Then the models retrained, its sha256 and the verdict on the audit chain.
    """
    subjects = receipt.get("subjects")
    count = len(subjects) if isinstance(subjects, list | dict) else subjects
    request = [
        ["request", e(receipt.get("request_id"))],
        ["spec", e(receipt.get("spec"))],
        ["channel", e(receipt.get("channel"))],
        ["filed by", e(receipt.get("actor"))],
        ["batch", f"{e(receipt.get('batch'))} ({e(receipt.get('requests_in_batch'))} request(s))"],
        ["subjects", e(count)],
    ]
    purged = _dict(receipt.get("purged"))

    def amount(value: Any) -> str:  # counts and names, never a stored file's path
        if isinstance(value, list):
            return f"{len(value)}"
        if isinstance(value, dict):
            if any(_is_path(str(k)) for k in value):
                return f"{len(value)} file(s)"
            return e(", ".join(f"{k}: {v if not isinstance(v, list | dict) else len(v)}" for k, v in value.items()))
        return "(a stored file)" if _is_path(str(value)) else e(value)

    purge_rows = [[e(where), amount(what)] for where, what in purged.items()]
    models = _dict(receipt.get("models"))
    retrained = _dict(models.get("retrained"))
    model_rows = [
        [
            e(name),
            e(v.get("to") if isinstance(v, dict) else v),
            e(v.get("redacted_dataset") if isinstance(v, dict) else ""),
        ]
        for name, v in retrained.items()
    ]
    scan = _dict(receipt.get("scan"))
    times = _dict(receipt.get("timestamps"))
    if verified is None:
        chain = '<div class="note bad" role="status">not verified against the audit chain</div>'
    elif verified.get("ok"):
        chain = (
            f'<div class="note ok" role="status">verified: the receipt matches its sha256 and the audit chain '
            f"({e(verified.get('chain_rows'))} rows) is intact</div>"
        )
    else:
        shown = "".join(f"<li>{e(p)}</li>" for p in (verified.get("problems") or [])[:10])
        chain = f'<div class="note bad" role="alert"><b>NOT verified</b><ul>{shown}</ul></div>'
    body = (
        _head(f"Erasure receipt: {receipt.get('request_id', '?')}", home, f"sha256 {receipt.get('sha256', '?')}")
        + chain
        + "<h2>Request</h2>"
        + _table(["", ""], request, "")
        + "<h2>Purged</h2>"
        + _table(["where", "what"], purge_rows, "Nothing was purged.")
        + "<h2>Models</h2>"
        + f"<p>affected: {e(', '.join(map(str, models.get('affected') or [])) or 'none')} · retired: "
        f"{e(', '.join(map(str, models.get('retired') or [])) or 'none')}</p>"
        + _table(["model", "retrained to version", "on dataset"], model_rows, "No model was retrained.")
        + "<h2>Scan</h2>"
        + f"<p>{_verdict(bool(scan.get('clean')), 'clean', 'NOT clean')}: "
        f"{e(len(scan.get('hits') or []))} hit(s) after the purge</p>"
        + "<h2>Times</h2>"
        + _table(["step", "at"], [[e(k), when(v)] for k, v in times.items()], "")
        + f'<p class="muted">previous receipt sha256 {e(receipt.get("previous_receipt_sha256"))}</p>'
    )
    return document("Ativo: erasure receipt", body)


def other(title: str, doc: Any, home: str) -> str:
    """Any other JSON report: its top-level fields as a table (nested values folded), the raw JSON one click away."""
    rows = []
    for key, value in doc.items() if isinstance(doc, dict) else [("value", doc)]:
        shown = (
            value if isinstance(value, str | int | float | bool) or value is None else json.dumps(value, default=str)
        )
        text = "(a stored file: see the raw JSON)" if _is_path(str(shown)) else str(shown)
        rows.append([e(key), e(text if len(text) <= 300 else text[:299] + "…")])
    return document(f"Ativo: {title}", _head(title, home) + _table(["field", "value"], rows, "The report is empty."))
