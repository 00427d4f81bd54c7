"""The monitoring report of one window: JSON for machines, one self-contained HTML page (charts as SVG) for people.

Both are logged beside the model card on the version's MLflow run (``monitor/<window>/``) and linked from the
version (tag ``ativo.monitor_report_uri``). Only aggregates appear: bin shares, rates, AUCs; never a row.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from ativo.monitor.profile import Binned, Profile
from ativo.report import pyplot, svg

STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;"
    "margin:.5em 0}td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;font-size:13px;"
    "text-align:left}.drift{color:#c0392b}.ok{color:#1e8449}.charts svg{max-width:100%;height:auto}"
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
    out += [f"{a:.3g}–{b:.3g}" for a, b in zip(edges, edges[1:], strict=False)]
    return [*out, f"≥{edges[-1]:.3g}", "missing"]


def shares_chart(profile: Profile, counts: Mapping[str, Sequence[int]], drifted: set[str]) -> str:
    """Reference share against window share per bin, one panel per feature (and the score); drifted ones in red."""
    import math

    import numpy as np

    plt = pyplot()
    names = list(counts)
    cols = 4
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 3.2, rows * 2.3), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        ref = profile.scores if name == "score" else profile.features[name]
        r = np.asarray(ref.counts, dtype="float64")
        c = np.asarray(counts[name], dtype="float64")
        keep = (r + c) > 0
        x = np.arange(int(keep.sum()))
        ax.bar(x - 0.2, (r / max(r.sum(), 1))[keep], 0.4, label="reference", color="#95a5a6")
        ax.bar(
            x + 0.2, (c / max(c.sum(), 1))[keep], 0.4, label="window", color="#c0392b" if name in drifted else "#2e86c1"
        )
        ax.set_xticks(
            x, [lab for lab, k in zip(_labels(ref), keep, strict=False) if k], rotation=60, ha="right", fontsize=6
        )
        ax.set_title(
            name + (" (drift)" if name in drifted else ""), fontsize=8, color="#c0392b" if name in drifted else "black"
        )
        ax.tick_params(axis="y", labelsize=6)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6)
    fig.tight_layout()
    return svg(fig)


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
