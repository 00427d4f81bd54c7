"""Small inline SVG charts for the Ativo page, drawn on the server with :mod:`ativo.report`'s primitives.

Each chart is at most :data:`WIDTH` × :data:`HEIGHT` px: a title, the y axis (its lowest and highest value and its
label), the x axis (the first and last point's label and its label), an optional dashed reference line (a budget
pace, a limit) and one mark per point with a ``<title>`` tooltip. Every text is escaped. A point whose value is None,
NaN or infinite is skipped (its slot on the x axis stays, so the labels keep their places); with nothing to draw the
chart says "no data yet".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ativo.report import AXIS, BLUE, RED, circle, finite, line, no_data, number, rect, svg_open, text

WIDTH, HEIGHT = 320, 120
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 18, 26
"""Margins around the plot area: room for the y ticks and label, the title, the x ticks and label."""

Point = tuple[str, float | None]
"""A point: its label on the x axis (and in its tooltip) and its value (None: nothing measured)."""


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
    shown: list[float] = [*values, *([reference] if reference is not None and finite(reference) else [])]
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
    fmt: Callable[[float], str] = number,
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
    head = svg_open(width, height, title, title_x=LEFT)
    drawn = [(i, label, float(v)) for i, (label, v) in enumerate(points) if v is not None and finite(v)]
    if not drawn:
        return no_data(head, width, height)
    ref = reference if reference is not None and finite(reference) else None
    low, high = value_range([v for _, _, v in drawn], bars=bars, reference=ref)
    bottom, right = height - BOTTOM, width - RIGHT
    mid = (TOP + bottom) / 2
    parts = [
        head,
        line(LEFT, TOP, LEFT, bottom, AXIS),
        line(LEFT, bottom, right, bottom, AXIS),
        text(LEFT - 3, TOP + 4, fmt(high), anchor="end"),
        text(LEFT - 3, bottom, fmt(low), anchor="end"),
        text(9, mid, y_label, anchor="middle", rotate=-90),
        text(LEFT, bottom + 10, points[0][0]),
        text(right, bottom + 10, points[-1][0], anchor="end"),
        text((LEFT + right) / 2, height - 3, x_label, anchor="middle"),
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
            parts.append(rect(x - slot * 0.35, top, slot * 0.7, size, BLUE, hint=f"{label}: {fmt(v)}"))
    else:
        if len(xy) > 1:
            line_points = " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in xy)
            parts.append(f'<polyline points="{line_points}" fill="none" stroke="{BLUE}" stroke-width="1.5"/>')
        parts.extend(circle(x, y, 2.5, BLUE, hint=f"{label}: {fmt(v)}") for x, y, label, v in xy)
    if ref is not None:
        y = plot_y(ref, low, high, height=height)
        name = reference_label or "reference"
        parts.append(line(LEFT, y, right, y, RED, dash="4 3", hint=f"{name}: {fmt(ref)}"))
        parts.append(text(right, y - 2, name, fill=RED, anchor="end"))
    return "".join(parts) + "</svg>"
