"""Small inline SVG charts for the Ativo page, drawn on the server: no script, no library, nothing fetched.

Each chart is at most :data:`WIDTH` × :data:`HEIGHT` px: a title, the y axis (its lowest and highest value and its
label), the x axis (the first and last point's label and its label), an optional dashed reference line (a budget
pace, a limit) and one mark per point with a ``<title>`` tooltip. Every text is escaped. A point whose value is None,
NaN or infinite is skipped (its slot on the x axis stays, so the labels keep their places); with nothing to draw the
chart says "no data yet".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape

WIDTH, HEIGHT = 320, 120
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 18, 26
"""Margins around the plot area: room for the y ticks and label, the title, the x ticks and label."""

Point = tuple[str, float | None]
"""A point: its label on the x axis (and in its tooltip) and its value (None: nothing measured)."""


def _finite(value: float | None) -> bool:
    return value is not None and isinstance(value, int | float) and math.isfinite(value)


def _fmt(value: float) -> str:
    """``value`` with the precision its size needs (0.0042, 0.73, 12.5, 1,234)."""
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


def plot_x(index: int, count: int, *, bars: bool, width: int = WIDTH) -> float:
    """The x of slot ``index`` of ``count``: slot centres for bars, the plot's ends for the first and last point."""
    inner = width - LEFT - RIGHT
    if bars:
        return LEFT + (index + 0.5) * inner / count
    return LEFT + (inner / 2 if count == 1 else index * inner / (count - 1))


def plot_y(value: float, low: float, high: float, *, height: int = HEIGHT) -> float:
    """The y of ``value`` on an axis from ``low`` (the plot's bottom) to ``high`` (its top)."""
    inner = height - TOP - BOTTOM
    return TOP + inner * (1 - (value - low) / (high - low))


def value_range(values: Sequence[float], *, bars: bool, reference: float | None = None) -> tuple[float, float]:
    """The y axis's ends: the values' (and the reference line's) span, from 0 for bars, never empty."""
    shown: list[float] = [*values, *([reference] if reference is not None and _finite(reference) else [])]
    low, high = min(shown), max(shown)
    if bars:
        low, high = min(low, 0.0), max(high, 0.0)
    if high == low:  # one value, or all the same: a band around it
        pad = abs(high) * 0.1 or 1.0
        low, high = (low if bars and low == 0 else low - pad), high + pad
    return low, high


def chart(
    title: str,
    points: Sequence[Point],
    *,
    x_label: str,
    y_label: str,
    bars: bool = False,
    reference: float | None = None,
    reference_label: str = "",
    fmt: Callable[[float], str] = _fmt,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> str:
    """An inline ``<svg>`` of ``points`` (a line with dots, or bars), at most ``width`` × ``height`` px.

    Args:
        title: what it shows (drawn on top and the SVG's own ``<title>``).
        points: (label, value) in x order; None, NaN and infinite values are skipped.
        x_label: the x axis's name.
        y_label: the y axis's name (with its unit).
        bars: bars from 0 instead of a line.
        reference: a dashed horizontal line (a limit, a budget pace); not drawn when None or not finite.
        reference_label: the reference line's name, in its tooltip and beside it.
        fmt: how a value is written in tooltips and on the y axis.
        width: the SVG's width (at most :data:`WIDTH`).
        height: the SVG's height (at most :data:`HEIGHT`).
    """
    width, height = min(width, WIDTH), min(height, HEIGHT)
    t = escape(title)
    head = (
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{t}"><title>{t}</title>'
        f'<text x="{LEFT}" y="11" font-size="11" font-weight="600" fill="#1d2433">{t}</text>'
    )
    drawn = [(i, label, float(v)) for i, (label, v) in enumerate(points) if v is not None and _finite(v)]
    if not drawn:
        return (
            head + f'<text x="{width / 2:.1f}" y="{height / 2 + 4:.1f}" font-size="11" text-anchor="middle" '
            f'fill="#6b7385">no data yet</text></svg>'
        )
    ref = reference if _finite(reference) else None
    low, high = value_range([v for _, _, v in drawn], bars=bars, reference=ref)
    bottom, right = height - BOTTOM, width - RIGHT
    parts = [
        head,
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}" stroke="#9aa1ae"/>',
        f'<line x1="{LEFT}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#9aa1ae"/>',
        f'<text x="{LEFT - 3}" y="{TOP + 4}" font-size="9" text-anchor="end" fill="#6b7385">{escape(fmt(high))}</text>',
        f'<text x="{LEFT - 3}" y="{bottom}" font-size="9" text-anchor="end" fill="#6b7385">{escape(fmt(low))}</text>',
        f'<text x="9" y="{(TOP + bottom) / 2:.1f}" font-size="9" text-anchor="middle" fill="#6b7385" '
        f'transform="rotate(-90 9 {(TOP + bottom) / 2:.1f})">{escape(y_label)}</text>',
        f'<text x="{LEFT}" y="{bottom + 10}" font-size="9" fill="#6b7385">{escape(points[0][0])}</text>',
        f'<text x="{right}" y="{bottom + 10}" font-size="9" text-anchor="end" fill="#6b7385">'
        f"{escape(points[-1][0])}</text>",
        f'<text x="{(LEFT + right) / 2:.1f}" y="{height - 3}" font-size="9" text-anchor="middle" fill="#6b7385">'
        f"{escape(x_label)}</text>",
    ]
    n = len(points)
    xy = [
        (plot_x(i, n, bars=bars, width=width), plot_y(v, low, high, height=height), label, v) for i, label, v in drawn
    ]
    if bars:
        slot = (width - LEFT - RIGHT) / n
        zero = plot_y(max(low, 0.0), low, high, height=height)
        for x, y, label, v in xy:
            top, size = min(y, zero), abs(zero - y)
            parts.append(
                f'<rect x="{x - slot * 0.35:.1f}" y="{top:.1f}" width="{slot * 0.7:.1f}" height="{size:.1f}" '
                f'fill="#4c78a8"><title>{escape(label)}: {escape(fmt(v))}</title></rect>'
            )
    else:
        if len(xy) > 1:
            line = " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in xy)
            parts.append(f'<polyline points="{line}" fill="none" stroke="#4c78a8" stroke-width="1.5"/>')
        parts.extend(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="#4c78a8"><title>{escape(label)}: {escape(fmt(v))}'
            "</title></circle>"
            for x, y, label, v in xy
        )
    if ref is not None:
        y = plot_y(ref, low, high, height=height)
        name = escape(reference_label or "reference")
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#b3261e" stroke-dasharray="4 3">'
            f"<title>{name}: {escape(fmt(ref))}</title></line>"
            f'<text x="{right}" y="{y - 2:.1f}" font-size="9" text-anchor="end" fill="#b3261e">{name}</text>'
        )
    return "".join(parts) + "</svg>"
