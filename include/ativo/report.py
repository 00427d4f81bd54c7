"""Charts for every HTML page a person reads, drawn by hand as inline SVG: no library, no script, nothing fetched.

The model card, the monitoring report and the Ativo page (:mod:`ativo.ops.charts`) draw with these, so every picture
has one look and costs microseconds, not the second of CPU a plotting library took on the gate's decision path.

The primitives (:func:`svg_open`, :func:`text`, :func:`rect`, :func:`line`, :func:`circle`) escape every text they
are given. The charts (:func:`hbars`, :func:`grouped_bars`, :func:`line_chart`) give each mark a ``<title>`` tooltip
with its exact value, write values compactly on the axes, skip a value that is None, NaN or infinite (its slot stays),
say "no data yet" when nothing is left to draw, and grow with the number of bars so that their labels stay readable.
"""

from __future__ import annotations

import hashlib
import math
import numbers
from collections.abc import Callable, Sequence
from html import escape
from typing import TypeGuard

INK, MUTED, AXIS, GRID = "#1d2433", "#6b7385", "#9aa1ae", "#e6e8ec"
BLUE, RED, GREY = "#4c78a8", "#b3261e", "#a9b0bc"
PALETTE = (BLUE, "#f58518", "#54a24b", "#b279a2", "#9d755d")
"""Series colours, in order."""

NO_DATA = "no data yet"
CHAR = 0.55
"""A character's mean width in a sans-serif face, as a share of its font size: to size room for labels."""

Fmt = Callable[[float], str]


def finite(value: object) -> TypeGuard[float]:
    """Whether ``value`` is a real number that can be drawn (not None, NaN or infinite; numpy scalars count)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def number(value: float) -> str:
    """``value`` with the precision its size needs (0.0042, 0.73, 12.5, 1,234): for axes and labels."""
    if value == 0:
        return "0"
    size = abs(value)
    if size >= 1000:
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 0.1:
        return f"{value:.2f}"
    return f"{value:.2g}"


def exact(value: float) -> str:
    """``value`` to six significant digits: what a tooltip shows."""
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    return f"{value:.6g}"


def shorten(label: str, chars: int) -> str:
    """``label`` cut to ``chars`` characters, the cut marked with an ellipsis."""
    return label if len(label) <= chars else label[: max(chars - 1, 1)] + "…"


def text_width(label: str, size: float) -> float:
    """About how wide ``label`` is drawn at font ``size`` (px)."""
    return len(label) * size * CHAR


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values from at most ``low`` to at least ``high`` (about ``count`` of them, steps of 1, 2, 2.5, 5)."""
    if not (finite(low) and finite(high)) or high < low:
        return [0.0, 1.0]
    if high == low:
        pad = abs(high) * 0.1 or 1.0
        low, high = (0.0, high + pad) if low == 0 else (low - pad, high + pad)
    raw = (high - low) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    return [round(i * step, 12) for i in range(first, last + 1)]


def tick_label(value: float) -> str:
    """A tick value as short as it can be written (0.2, 0.25, 1.5, 40, 20k)."""
    if abs(value) >= 10_000:
        return f"{value / 1000:g}k"
    return f"{value:.6g}"


def percent(value: float) -> str:
    """A share as a whole percentage (40%)."""
    return f"{value:.0%}"


def exact_percent(value: float) -> str:
    """A share as a percentage to two decimals (12.34%)."""
    return f"{value:.2%}"


# --- primitives -----------------------------------------------------------------------------------------------------


def tip(content: str) -> str:
    """A ``<title>`` tooltip (escaped)."""
    return f"<title>{escape(content)}</title>"


def svg_open(width: float, height: float, title: str, *, title_fill: str = INK, title_x: float = 8) -> str:
    """The ``<svg>`` element's opening: its size, its name for screen readers and tooltips, and the drawn title."""
    t = escape(title)
    return (
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="{t}" font-family="system-ui,sans-serif">'
        f"<title>{t}</title>" + text(title_x, 12, title, size=11, fill=title_fill, weight="600")
    )


def text(
    x: float,
    y: float,
    content: str,
    *,
    size: float = 9,
    fill: str = MUTED,
    anchor: str = "start",
    weight: str | None = None,
    rotate: float | None = None,
    hint: str | None = None,
) -> str:
    """A ``<text>`` at (``x``, ``y``), turned ``rotate`` degrees about it; ``hint``: a tooltip (its whole text)."""
    attrs = f'x="{x:.1f}" y="{y:.1f}" font-size="{size:g}" fill="{fill}"'
    if anchor != "start":
        attrs += f' text-anchor="{anchor}"'
    if weight:
        attrs += f' font-weight="{weight}"'
    if rotate:
        attrs += f' transform="rotate({rotate:g} {x:.1f} {y:.1f})"'
    inner = escape(content) + (tip(hint) if hint else "")
    return f"<text {attrs}>{inner}</text>"


def rect(
    x: float, y: float, width: float, height: float, fill: str, *, hint: str | None = None, attrs: str = ""
) -> str:
    """A ``<rect>`` (a bar), with its tooltip."""
    body = f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(width, 0):.1f}" height="{max(height, 0):.1f}" fill="{fill}"'
    body += f" {attrs}" if attrs else ""
    return f"{body}>{tip(hint)}</rect>" if hint else f"{body}/>"


def line(
    x1: float,
    y1: float,
    x2: float,
    y2: float,
    stroke: str = AXIS,
    *,
    width: float = 1,
    dash: str | None = None,
    hint: str | None = None,
) -> str:
    """A ``<line>``: an axis, a grid line, a reference or a limit mark (with its tooltip)."""
    body = f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{stroke}"'
    if width != 1:
        body += f' stroke-width="{width:g}"'
    if dash:
        body += f' stroke-dasharray="{dash}"'
    return f"{body}>{tip(hint)}</line>" if hint else f"{body}/>"


def circle(x: float, y: float, r: float, fill: str, *, hint: str | None = None) -> str:
    """A ``<circle>`` (a point), with its tooltip."""
    body = f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:g}" fill="{fill}"'
    return f"{body}>{tip(hint)}</circle>" if hint else f"{body}/>"


def no_data(head: str, width: float, height: float) -> str:
    """A chart with nothing to draw: its head and the words :data:`NO_DATA`."""
    return head + text(width / 2, height / 2 + 4, NO_DATA, size=11, anchor="middle") + "</svg>"


Swatch = Callable[[float, float], str]
"""A legend's sample of a mark: its markup in the 10 px square whose top left corner is (x, y)."""


def _legend(x: float, y: float, entries: Sequence[tuple[Swatch, str]]) -> list[str]:
    """Legend entries in one row, from (``x``, ``y``) (the words' baseline): each a swatch and its words."""
    parts = []
    for swatch, label in entries:
        parts.append(swatch(x, y - 9))
        parts.append(text(x + 14, y, label, size=9, fill=INK))
        x += 14 + text_width(label, 9) + 12
    return parts


def _box(fill: str, *, hatch: str | None = None) -> Swatch:
    """A filled square swatch (faded and hatched with the pattern ``hatch``, when given)."""

    def draw(x: float, y: float) -> str:
        if hatch is None:
            return rect(x, y, 10, 10, fill)
        return rect(x, y, 10, 10, fill, attrs='fill-opacity="0.45"') + rect(x, y, 10, 10, f"url(#{hatch})")

    return draw


def _dashes(stroke: str) -> Swatch:
    """A dashed line swatch."""
    return lambda x, y: line(x, y + 5, x + 10, y + 5, stroke, width=1.2, dash="3 2")


def _dot(fill: str) -> Swatch:
    """A line-with-a-dot swatch."""
    return lambda x, y: line(x, y + 5, x + 10, y + 5, fill, width=1.5) + circle(x + 5, y + 5, 3, fill)


# --- charts ---------------------------------------------------------------------------------------------------------

Bar = tuple[str, float | None]
"""A bar: its label and its value (None: nothing measured)."""


def hbars(
    title: str,
    bars: Sequence[Bar],
    *,
    x_label: str,
    limits: Sequence[float | None] | None = None,
    fmt: Fmt = number,
    plot_width: int = 300,
    max_label: int = 28,
) -> str:
    """Horizontal bars from 0, top to bottom in the given order, each with its value written at its end.

    Args:
        title: what it shows.
        bars: (label, value); a None, NaN or infinite value draws no bar (its row says "no value").
        x_label: the value axis's name (with its unit).
        limits: per bar, a limit (None: none): drawn as a black mark across the bar; a bar beyond it is red.
        fmt: how a value is written at its bar's end.
        plot_width: the bars' area (px); the SVG adds room for the labels and values.
        max_label: a longer label is cut (its tooltip keeps it whole).
    """
    limits = list(limits) if limits is not None else [None] * len(bars)
    if len(limits) != len(bars):
        raise ValueError(f"hbars: {len(limits)} limits for {len(bars)} bars")
    labels = [shorten(str(label), max_label) for label, _ in bars]
    label_room = max([text_width(lab, 10) for lab in labels] + [text_width(title, 11) - plot_width, 20]) + 10
    row, top, bottom, right = 20, 24, 34, 48
    left = label_room
    width = left + plot_width + right
    height = top + row * max(len(bars), 1) + bottom
    head = svg_open(width, height, title)
    values = [float(v) if finite(v) else None for _, v in bars]
    marks = [float(lim) if finite(lim) else None for lim in limits]
    shown = [v for v in values if v is not None] + [m for m in marks if m is not None]
    if not bars or all(v is None for v in values):
        return no_data(head, width, height)
    ticks = nice_ticks(min([0.0, *shown]), max([0.0, *shown]))
    low, high = ticks[0], ticks[-1]

    def at(v: float) -> float:
        return left + plot_width * (v - low) / (high - low)

    plot_bottom = top + row * len(bars)
    parts = [head]
    for t in ticks:
        parts.append(line(at(t), top, at(t), plot_bottom, GRID))
        parts.append(text(at(t), plot_bottom + 11, tick_label(t), anchor="middle"))
    zero = at(0.0)
    parts.append(line(zero, top, zero, plot_bottom))
    parts.append(line(left, plot_bottom, left + plot_width, plot_bottom))
    parts.append(text(left + plot_width / 2, height - 4, x_label, anchor="middle"))
    for i, ((label, _), short, v, lim) in enumerate(zip(bars, labels, values, marks, strict=True)):
        mid = top + row * (i + 0.5)
        parts.append(
            text(
                left - 6, mid + 3.5, short, size=10, fill=INK, anchor="end", hint=str(label) if short != label else None
            )
        )
        if v is None:
            parts.append(text(zero + 4, mid + 3, "no value", fill=MUTED))
        else:
            over = lim is not None and v > lim
            hint = f"{label}: {exact(v)}" + (
                "" if lim is None else f" ({'above' if over else 'within'} its limit of {exact(lim)})"
            )
            x0, x1 = sorted((zero, at(v)))
            parts.append(rect(x0, mid - 6, x1 - x0, 12, RED if over else BLUE, hint=hint))
            written, x = fmt(v), max(x1, zero) + 4
            if lim is not None and x - 4 <= at(lim) <= x + text_width(written, 9) + 2:
                x = at(lim) + 4  # after the limit's mark, not across it
            parts.append(text(x, mid + 3, written, fill=INK))
        if lim is not None:
            parts.append(line(at(lim), mid - 9, at(lim), mid + 9, INK, width=2, hint=f"{label}: limit {exact(lim)}"))
    return "".join(parts) + "</svg>"


Series = tuple[str, Sequence[float | None]]
"""A series of grouped bars: its name (in the legend and tooltips) and one value per group (None: not measured)."""


def grouped_bars(
    title: str,
    groups: Sequence[str],
    series: Sequence[Series],
    *,
    y_label: str,
    colors: Sequence[str] = PALETTE,
    faded: Sequence[bool] | None = None,
    faded_label: str = "",
    notes: Sequence[str] | None = None,
    y_range: tuple[float, float] | None = None,
    fmt: Fmt = tick_label,
    tip_fmt: Fmt = exact,
    bar_width: float = 12,
    title_fill: str = INK,
    max_label: int = 24,
) -> str:
    """Vertical bars side by side per group (one per series), with a legend; the SVG widens with the groups.

    Args:
        title: what it shows.
        groups: the groups' names, left to right; a long name is cut (its tooltip keeps it whole) and the names are
            slanted when they do not fit under their bars.
        series: (name, one value per group); a None, NaN or infinite value draws no bar.
        y_label: the value axis's name.
        colors: the series' colours, in order.
        faded: per group, whether its bars are drawn faded and hatched (a group too small to judge).
        faded_label: what faded bars mean (in the legend and their tooltips).
        notes: per group, words added to its bars' tooltips (its rows).
        y_range: the value axis's ends (default: from 0, or the lowest value, to a round number above the highest).
        fmt: how the value axis's ticks are written.
        tip_fmt: how a bar's value is written in its tooltip.
        bar_width: one bar's width (px).
        title_fill: the title's colour (red to flag the chart).
        max_label: a group's name longer than this is cut.
    """
    n = len(groups)
    for name, given in series:
        if len(given) != n:
            raise ValueError(f"grouped_bars: series {name!r} has {len(given)} values for {n} groups")
    faded = list(faded) if faded is not None else [False] * n
    notes = list(notes) if notes is not None else [""] * n
    labels = [shorten(str(g), max_label) for g in groups]
    top, right, floor = 40, 12, 44.0
    bars_w = bar_width * max(len(series), 1)
    legend_w = sum(26 + text_width(w, 9) for w in [name for name, _ in series] + [faded_label or "faded"] * any(faded))
    least = max(300.0, text_width(title, 11) + 16, floor + legend_w + right)
    slot = max(bars_w + max(bar_width * 0.8, 6), (least - floor - right) / max(n, 1))  # few groups: wider slots
    fits = all(text_width(lab, 9) <= slot - 2 for lab in labels)
    longest = max([text_width(lab, 9) for lab in labels] + [0])
    slant = 40.0
    label_drop = 14 if fits else longest * math.sin(math.radians(slant)) + 12
    label_reach = 0 if fits else longest * math.cos(math.radians(slant)) - slot / 2 + 4  # left of the first slot
    left = max(floor, label_reach)
    bottom = label_drop + 16
    width = max(left + slot * max(n, 1) + right, least)
    plot_h = 150
    height = top + plot_h + bottom
    head = svg_open(width, height, title, title_fill=title_fill)
    values = [[float(v) if finite(v) else None for v in vals] for _, vals in series]
    shown = [v for vals in values for v in vals if v is not None]
    if not n or not series or not shown:
        return no_data(head, width, height)
    if y_range is not None and finite(y_range[0]) and finite(y_range[1]) and y_range[1] > y_range[0]:
        low, high = float(y_range[0]), float(y_range[1])
        ticks = [t for t in nice_ticks(low, high) if low - 1e-9 <= t <= high + 1e-9]
    else:
        ticks = nice_ticks(min([0.0, *shown]), max([0.0, *shown]))
        low, high = ticks[0], ticks[-1]
    plot_bottom = top + plot_h
    plot_right = left + slot * n

    def at(v: float) -> float:
        return plot_bottom - plot_h * (min(max(v, low), high) - low) / (high - low)

    digest = hashlib.sha1(repr((title, list(groups), [s[0] for s in series], shown)).encode()).hexdigest()[:10]
    hatch = f"hatch-{digest}"
    parts = [head]
    if any(faded):
        parts.append(
            f'<defs><pattern id="{hatch}" width="4" height="4" patternUnits="userSpaceOnUse" '
            f'patternTransform="rotate(45)"><line x1="0" y1="0" x2="0" y2="4" stroke="{INK}" stroke-width="1.2" '
            'stroke-opacity="0.55"/></pattern></defs>'
        )
    entries = [(_box(colors[i % len(colors)]), name) for i, (name, _) in enumerate(series)]
    if any(faded):
        entries.append((_box(GREY, hatch=hatch), faded_label or "faded"))
    parts.extend(_legend(left, 30, entries))
    for t in ticks:
        parts.append(line(left, at(t), plot_right, at(t), GRID))
        parts.append(text(left - 4, at(t) + 3, fmt(t), anchor="end"))
    parts.append(line(left, top, left, plot_bottom))
    zero = at(max(low, min(0.0, high)))
    parts.append(line(left, zero, plot_right, zero))
    mid_y = (top + plot_bottom) / 2
    parts.append(text(10, mid_y, y_label, anchor="middle", rotate=-90))
    for g, (group, short) in enumerate(zip(groups, labels, strict=True)):
        x0 = left + slot * g + (slot - bars_w) / 2
        centre = left + slot * (g + 0.5)
        whole = str(group) if short != group else None
        if fits:
            parts.append(text(centre, plot_bottom + 11, short, fill=INK, anchor="middle", hint=whole))
        else:
            parts.append(text(centre + 3, plot_bottom + 10, short, fill=INK, anchor="end", rotate=-slant, hint=whole))
        for s, ((name, _), vals) in enumerate(zip(series, values, strict=True)):
            v = vals[g]
            if v is None:
                continue
            y0, y1 = sorted((zero, at(v)))
            note = "; ".join(w for w in (notes[g], faded_label if faded[g] else "") if w)
            hint = f"{group}, {name}: {tip_fmt(v)}" + (f" ({note})" if note else "")
            x = x0 + bar_width * s
            colour = colors[s % len(colors)]
            if faded[g]:
                parts.append(rect(x, y0, bar_width - 1, y1 - y0, colour, hint=hint, attrs='fill-opacity="0.45"'))
                parts.append(
                    f'<rect x="{x:.1f}" y="{y0:.1f}" width="{bar_width - 1:.1f}" height="{y1 - y0:.1f}" '
                    f'fill="url(#{hatch})" pointer-events="none"/>'
                )
            else:
                parts.append(rect(x, y0, bar_width - 1, y1 - y0, colour, hint=hint))
    return "".join(parts) + "</svg>"


Point = tuple[float | None, float | None, str]
"""A point of a line: its x, its y (None: not measured) and words for its tooltip (its rows)."""


def line_chart(
    title: str,
    points: Sequence[Point],
    *,
    x_label: str,
    y_label: str,
    series_label: str = "model",
    diagonal: str | None = None,
    x_range: tuple[float, float] = (0.0, 1.0),
    y_range: tuple[float, float] = (0.0, 1.0),
    size: int = 300,
) -> str:
    """A line through ``points`` (in order) with a dot on each, on fixed axes; ``diagonal``: a dashed y = x line.

    Args:
        title: what it shows.
        points: (x, y, note); a point with an x or y that is None, NaN or infinite is skipped.
        x_label: the x axis's name.
        y_label: the y axis's name.
        series_label: the line's name in the legend.
        diagonal: the name of a dashed y = x reference (a perfectly calibrated model), or None for none.
        x_range: the x axis's ends.
        y_range: the y axis's ends.
        size: the plot area's side (px).
    """
    left, top, right, bottom = 46, 34, 12, 34
    width, height = left + size + right, top + size + bottom
    head = svg_open(width, height, title)
    (x_lo, x_hi), (y_lo, y_hi) = x_range, y_range
    drawn = [(float(x), float(y), note) for x, y, note in points if finite(x) and finite(y)]
    if not drawn or not (x_hi > x_lo and y_hi > y_lo):
        return no_data(head, width, height)

    def px(v: float) -> float:
        return left + size * (min(max(v, x_lo), x_hi) - x_lo) / (x_hi - x_lo)

    def py(v: float) -> float:
        return top + size * (1 - (min(max(v, y_lo), y_hi) - y_lo) / (y_hi - y_lo))

    parts = [head]
    for t in nice_ticks(x_lo, x_hi, 6):
        if x_lo - 1e-9 <= t <= x_hi + 1e-9:
            parts.append(line(px(t), top, px(t), top + size, GRID))
            parts.append(text(px(t), top + size + 11, tick_label(t), anchor="middle"))
    for t in nice_ticks(y_lo, y_hi, 6):
        if y_lo - 1e-9 <= t <= y_hi + 1e-9:
            parts.append(line(left, py(t), left + size, py(t), GRID))
            parts.append(text(left - 4, py(t) + 3, tick_label(t), anchor="end"))
    parts.append(line(left, top, left, top + size))
    parts.append(line(left, top + size, left + size, top + size))
    parts.append(text(left + size / 2, height - 4, x_label, anchor="middle"))
    parts.append(text(12, top + size / 2, y_label, anchor="middle", rotate=-90))
    entries = [(_dot(BLUE), series_label)]
    if diagonal:
        lo, hi = max(x_lo, y_lo), min(x_hi, y_hi)
        if hi > lo:
            parts.append(line(px(lo), py(lo), px(hi), py(hi), GREY, width=1.2, dash="4 3", hint=f"{diagonal}: y = x"))
        entries.insert(0, (_dashes(GREY), diagonal))
    parts.extend(_legend(left, 26, entries))
    if len(drawn) > 1:
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y, _ in drawn)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{BLUE}" stroke-width="1.5"/>')
    for x, y, note in drawn:
        hint = f"{x_label} {exact(x)}, {y_label} {exact(y)}" + (f" ({note})" if note else "")
        parts.append(circle(px(x), py(y), 3, BLUE, hint=hint))
    return "".join(parts) + "</svg>"
