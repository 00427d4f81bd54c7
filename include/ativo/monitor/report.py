"""The monitoring report of one window: JSON for machines, one self-contained HTML page (charts as SVG) for people.

Both are logged beside the model card on the version's MLflow run (``monitor/<window>/``) and linked from the
version (tag ``ativo.monitor_report_uri``). Only aggregates appear: bin shares, rates, AUCs; never a row.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from ativo.monitor.profile import Binned, Profile
from ativo.report import BLUE, GREY, INK, RED, exact_percent, grouped_bars, percent

STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;"
    "margin:.5em 0}td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;font-size:13px;"
    "text-align:left}.drift{color:#c0392b}.ok{color:#1e8449}.charts{display:flex;flex-wrap:wrap;gap:1em;"
    "align-items:flex-start}"
    ".charts svg{max-width:100%;height:auto}"
)


def _labels(ref: Binned) -> list[str]:
    if ref.categories is not None:
        return list(ref.categories)
    edges = list(ref.edges or ())
    if not edges:
        return ["all", "missing"]
    import numpy as np

    below = float(np.nextafter(edges[0], -np.inf))
    spike = float(f"{below:.6g}") == below  # the bin of a value most rows share (see numeric_bins)
    out = [f"={below:.6g}" if spike else f"<{edges[0]:.3g}"]
    # after a spike's bin its neighbour starts just above the spike's value: written as that value (0–2.29e+03)
    lows = [below if spike else edges[0], *edges[1:]]
    out += [f"{a:.3g}–{b:.3g}" for a, b in zip(lows, edges[1:], strict=False)]
    return [*out, f"≥{edges[-1]:.3g}", "missing"]


def shares_chart(profile: Profile, counts: Mapping[str, Sequence[int]], drifted: set[str]) -> str:
    """Reference share against window share per bin, one panel per feature (and the score); drifted ones in red.

    A bin neither the reference nor the window has a row in is left out.
    """
    panels = []
    for name in counts:
        ref = profile.scores if name == "score" else profile.features[name]
        r = [float(x) for x in ref.counts]
        c = [float(x) for x in counts[name]]
        r_total, c_total = max(sum(r), 1.0), max(sum(c), 1.0)
        keep = [i for i in range(min(len(r), len(c))) if r[i] + c[i] > 0]
        labels = _labels(ref)
        bins = [labels[i] if i < len(labels) else f"bin {i}" for i in keep]
        drift = name in drifted
        panels.append(
            grouped_bars(
                name + (" (drift)" if drift else ""),
                bins,
                [("reference", [r[i] / r_total for i in keep]), ("window", [c[i] / c_total for i in keep])],
                y_label="share of rows",
                colors=(GREY, RED if drift else BLUE),
                notes=[f"reference {int(r[i]):,} rows, window {int(c[i]):,} rows" for i in keep],
                fmt=percent,
                tip_fmt=exact_percent,
                bar_width=7,
                title_fill=RED if drift else INK,
                max_label=18,
            )
        )
    return "".join(panels)


def render_html(doc: dict[str, Any], profile: Profile, counts: Mapping[str, Sequence[int]]) -> str:
    """The report page of :func:`ativo.monitor.run.monitor_window`'s document."""
    a = doc["assessment"]
    d = doc["decision"]
    title = f"{a['spec']} v{a['version']} monitoring {doc['window']['start']} → {doc['window']['end']}"
    parts = [
        f"<h1>Monitoring: {html.escape(a['spec'])} version {html.escape(str(a['version']))}</h1>",
        f"<p>Window {html.escape(doc['window']['start'])} → {html.escape(doc['window']['end'])}: "
        f"{a['rows']} decisions; reference: dataset version {html.escape(str(profile.dataset_version))} "
        f"({profile.train_rows} training rows).</p>",
    ]
    verdict = "drift that matters" if a["drifted"] else ("no drift that matters" if a["judged"] else "not judged")
    parts.append(
        f"<p class='{'drift' if a['drifted'] else 'ok'}'><b>{verdict}</b>; decision: "
        f"<b>{html.escape(d['action'])}</b>: {html.escape(d['reason'])}</p>"
    )
    if a["reasons"]:
        parts.append("<ul>" + "".join(f"<li>{html.escape(r)}</li>" for r in a["reasons"]) + "</ul>")
    parts.append(
        f"<p>Alarms are judged beyond sampling noise: Holm's method across every hypothesis of the run at "
        f"α = {doc['alpha']:g}; a feature's effect must also reach PSI {doc['psi_threshold']:g}.</p>"
    )
    if a["drift"]:
        rows = "".join(
            f"<tr><td>{html.escape(x['name'])}</td><td>{x['psi']:.4f}</td><td>{x['p_value']:.3g}</td>"
            f"<td class='{'drift' if x['drifted'] else 'ok'}'>{'drift' if x['drifted'] else '—'}</td>"
            f"<td>{html.escape(x['reason'])}</td></tr>"
            for x in a["drift"]
        )
        parts.append(
            "<h2>Data and prediction drift</h2><table><tr><th>feature</th><th>PSI</th><th>p</th>"
            f"<th></th><th>reason</th></tr>{rows}</table>"
        )
        drifted = {x["name"] for x in a["drift"] if x["drifted"]}
        parts.append("<div class='charts'>" + shares_chart(profile, counts, drifted) + "</div>")
    perf = a.get("performance") or {}
    if perf:
        rows = "".join(
            f"<tr><th>{html.escape(k)}</th><td>{v:.4g}</td></tr>"
            if isinstance(v, float)
            else f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in perf.items()
        )
        parts.append(f"<h2>Performance</h2><table>{rows}</table>")
    fair = a.get("fairness") or []
    if fair:
        rows = "".join(
            f"<tr><td>{html.escape(f['attribute'])}</td><td>{f['metric']}</td><td>{f['difference']:.3f}</td>"
            f"<td>{'—' if f['reference_difference'] is None else format(f['reference_difference'], '.3f')}</td>"
            f"<td>{'not gated' if f['limit'] is None else format(f['limit'], 'g')}</td>"
            f"<td class='{'drift' if f.get('significant') else 'ok'}'>"
            f"{'beyond the limit' if f.get('significant') else '—'}</td></tr>"
            for f in fair
        )
        parts.append(
            "<h2>Fairness</h2><table><tr><th>attribute</th><th>rate</th><th>window difference</th>"
            f"<th>reference difference</th><th>gate limit</th><th></th></tr>{rows}</table>"
        )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>"
    )
