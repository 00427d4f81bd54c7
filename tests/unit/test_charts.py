"""The page's inline SVG charts: marks where the values put them, tooltips per point, escaped, never an exception."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest

from ativo.ops.charts import BOTTOM, HEIGHT, LEFT, RIGHT, TOP, WIDTH, chart

pytestmark = pytest.mark.unit
SVG = "{http://www.w3.org/2000/svg}"


def parsed(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # well-formed XML, or this raises
    assert root.tag == f"{SVG}svg"
    assert int(root.get("width")) <= 320 and int(root.get("height")) <= 120
    return root


def test_a_line_puts_each_point_where_its_value_is_with_a_tooltip():
    root = parsed(chart("PSI", [("w1", 0.0), ("w2", 0.5), ("w3", 1.0)], x_label="window", y_label="PSI"))
    circles = root.findall(f"{SVG}circle")
    got = [(float(c.get("cx")), float(c.get("cy")), c.find(f"{SVG}title").text) for c in circles]
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    assert got == [
        (pytest.approx(LEFT, abs=0.06), pytest.approx(TOP + inner_h, abs=0.06), "w1: 0"),
        (pytest.approx(LEFT + inner_w / 2, abs=0.06), pytest.approx(TOP + inner_h / 2, abs=0.06), "w2: 0.50"),
        (pytest.approx(LEFT + inner_w, abs=0.06), pytest.approx(TOP, abs=0.06), "w3: 1.00"),
    ]
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert {"PSI", "window", "w1", "w3"} <= set(texts)  # title, axis labels, first and last x label
    assert root.find(f"{SVG}title").text == "PSI"


def test_bars_start_at_zero_and_the_reference_line_sits_at_its_value():
    root = parsed(
        chart(
            "spend",
            [("d1", 2.0), ("d2", 4.0)],
            x_label="day",
            y_label="USD",
            bars=True,
            reference=4.0,
            reference_label="budget pace",
        )
    )
    rects = root.findall(f"{SVG}rect")
    bottom = HEIGHT - BOTTOM
    assert [float(r.get("y")) + float(r.get("height")) for r in rects] == [pytest.approx(bottom, abs=0.1)] * 2
    assert float(rects[1].get("y")) == pytest.approx(TOP, abs=0.06)  # the highest bar reaches the top
    assert float(rects[0].get("height")) == pytest.approx((bottom - TOP) / 2, abs=0.1)
    [pace] = [ln for ln in root.findall(f"{SVG}line") if ln.get("stroke-dasharray")]
    assert float(pace.get("y1")) == pytest.approx(TOP, abs=0.06)
    assert pace.find(f"{SVG}title").text == "budget pace: 4.00"


@pytest.mark.parametrize(
    "points",
    [[], [("a", None)], [("a", math.nan), ("b", math.inf), ("c", -math.inf)]],
    ids=["empty", "none", "nan-inf"],
)
def test_nothing_to_draw_says_no_data_yet(points):
    root = parsed(chart("AUC", points, x_label="trial", y_label="AUC", reference=math.nan))
    assert "no data yet" in [t.text for t in root.iter(f"{SVG}text")]
    assert not root.findall(f"{SVG}circle") and not root.findall(f"{SVG}line")


def test_nan_and_inf_are_skipped_and_the_others_keep_their_slots():
    root = parsed(
        chart("AUC", [("#0", 0.7), ("#1", math.nan), ("#2", math.inf), ("#3", 0.8)], x_label="trial", y_label="AUC")
    )
    xs = [float(c.get("cx")) for c in root.findall(f"{SVG}circle")]
    assert xs == [pytest.approx(LEFT, abs=0.06), pytest.approx(WIDTH - RIGHT, abs=0.06)]
    assert "nan" not in ET.tostring(root, encoding="unicode").lower()


def test_one_point_or_equal_values_draw_without_dividing_by_zero():
    root = parsed(chart("one", [("only", 3.0)], x_label="x", y_label="y"))
    [c] = root.findall(f"{SVG}circle")
    assert float(c.get("cx")) == pytest.approx(LEFT + (WIDTH - LEFT - RIGHT) / 2, abs=0.06)
    assert TOP <= float(c.get("cy")) <= HEIGHT - BOTTOM


def test_hostile_labels_are_text():
    evil = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
    svg = chart(evil, [(evil, 1.0), ("b", 2.0)], x_label=evil, y_label=evil, reference=1.5, reference_label=evil)
    root = parsed(svg)
    assert "<script" not in svg and "<img" not in svg
    assert root.find(f"{SVG}title").text == evil
    assert [t.text for t in root.iter(f"{SVG}text")].count(evil) >= 3  # title, x label, y label: as text
