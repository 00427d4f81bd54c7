"""The report charts (model card, monitoring report): well-formed SVG, one mark per value with its exact value as a
tooltip, hostile labels kept as text, and never an exception on missing values."""

from __future__ import annotations

import math
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from ativo.evaluate.card import attack_chart, calibration_chart, group_chart, importance_chart
from ativo.monitor.profile import Binned, Profile
from ativo.monitor.report import render_html, shares_chart
from ativo.report import INK, NO_DATA, RED, grouped_bars, hbars, line_chart

pytestmark = pytest.mark.unit
SVG = "{http://www.w3.org/2000/svg}"
EVIL = "<script>alert(1)</script> & \"quoted\" 'too'"


def parsed(svg: str) -> ET.Element:
    assert "<script" not in svg  # escaped, never markup
    root = ET.fromstring(svg)  # well-formed XML, or this raises
    assert root.tag == f"{SVG}svg"
    return root


def marks(root: ET.Element, tag: str) -> list[ET.Element]:
    """The value marks: shapes that carry a tooltip (legend swatches and hatching carry none)."""
    return [e for e in root.iter(f"{SVG}{tag}") if e.find(f"{SVG}title") is not None]


def tips(root: ET.Element, tag: str) -> list[str]:
    return [e.find(f"{SVG}title").text or "" for e in marks(root, tag)]


def texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


def test_horizontal_bars_keep_hostile_labels_as_text_and_mark_each_value():
    root = parsed(hbars(EVIL, [(EVIL, 0.123456789), ("b", 2.0), ("c", None)], x_label=EVIL))
    assert root.find(f"{SVG}title").text == EVIL
    assert tips(root, "rect") == [f"{EVIL}: 0.123457", "b: 2"]  # the exact value; None draws no bar
    assert "no value" in texts(root)
    assert EVIL in texts(root)  # the title and the axis label, whole
    label = next(t for t in root.iter(f"{SVG}text") if t.find(f"{SVG}title") is not None)
    assert label.find(f"{SVG}title").text == EVIL  # the cut bar label keeps the whole name in its tooltip


def test_a_bar_beyond_its_limit_is_red_and_every_limit_has_its_mark():
    root = parsed(
        hbars("attacks", [("flip", 0.02), ("attack", 0.4), ("free", 0.1)], x_label="rate", limits=[0.05, 0.35, None])
    )
    bars = marks(root, "rect")
    assert [b.get("fill") == RED for b in bars] == [False, True, False]
    limits = [ln for ln in marks(root, "line") if ln.get("stroke") == INK]
    assert [ln.find(f"{SVG}title").text for ln in limits] == ["flip: limit 0.05", "attack: limit 0.35"]
    right_end = [float(b.get("x")) + float(b.get("width")) for b in bars]
    assert float(limits[1].get("x1")) < right_end[1]  # the attack bar reaches past its mark
    assert float(limits[0].get("x1")) > right_end[0]


def test_grouped_bars_mark_each_value_and_fade_the_groups_too_small_to_judge():
    groups = ["Female", EVIL, "Other"]
    svg = grouped_bars(
        EVIL,
        groups,
        [("selection rate", [0.1, 0.2, math.nan]), ("TPR", [0.5, None, 0.7]), (EVIL, [0.05, 0.06, 0.07])],
        y_label="rate",
        faded=[False, False, True],
        faded_label="too few rows to judge",
        notes=["100 rows", "200 rows", "3 rows"],
        y_range=(0.0, 1.0),
    )
    root = parsed(svg)
    got = tips(root, "rect")
    assert len(got) == 7  # 9 values, one NaN and one None
    assert "Female, selection rate: 0.1 (100 rows)" in got
    assert f"{EVIL}, {EVIL}: 0.06 (200 rows)" in got
    assert "Other, TPR: 0.7 (3 rows; too few rows to judge)" in got
    faded = [r for r in marks(root, "rect") if r.get("fill-opacity")]
    assert len(faded) == 2 and all("Other" in r.find(f"{SVG}title").text for r in faded)
    hatch = root.find(f"{SVG}defs/{SVG}pattern").get("id")
    assert len([r for r in root.iter(f"{SVG}rect") if r.get("fill") == f"url(#{hatch})"]) == 3  # 2 bars + legend
    assert {"selection rate", "TPR", EVIL, "too few rows to judge"} <= set(texts(root))  # the legend


def test_grouped_bars_widen_with_the_groups_and_slant_long_names():
    few = parsed(grouped_bars("t", ["a", "b"], [("s", [0.1, 0.2])], y_label="y"))
    many_names = [f"Group number {i} with a long name" for i in range(30)]
    many = parsed(grouped_bars("t", many_names, [("s", [0.1] * 30)], y_label="y"))
    assert float(many.get("width")) > 2 * float(few.get("width"))  # room for 30 groups, not squeezed into 300 px
    slanted = [t for t in many.iter(f"{SVG}text") if "rotate(-40" in (t.get("transform") or "")]
    assert len(slanted) == 30 and all(t.find(f"{SVG}title").text in many_names for t in slanted)


def test_a_line_chart_has_one_dot_per_point_and_the_perfect_diagonal():
    root = parsed(
        line_chart(
            EVIL,
            [(0.1, 0.12, "864 rows"), (0.5, math.nan, ""), (None, 0.3, ""), (0.9, 0.88, EVIL)],
            x_label="mean predicted probability",
            y_label=EVIL,
            diagonal="perfect",
        )
    )
    assert tips(root, "circle") == [
        f"mean predicted probability 0.1, {EVIL} 0.12 (864 rows)",
        f"mean predicted probability 0.9, {EVIL} 0.88 ({EVIL})",
    ]
    [diagonal] = [ln for ln in marks(root, "line") if ln.get("stroke-dasharray")]
    assert (float(diagonal.get("x2")) - float(diagonal.get("x1"))) == pytest.approx(
        float(diagonal.get("y1")) - float(diagonal.get("y2"))
    )  # y = x on square axes
    assert {"perfect", "model"} <= set(texts(root))


@pytest.mark.parametrize(
    "svg",
    [
        pytest.param(lambda: hbars("t", [], x_label="x"), id="hbars-empty"),
        pytest.param(
            lambda: hbars("t", [("a", None), ("b", math.nan)], x_label="x", limits=[math.inf, None]), id="hbars-none"
        ),
        pytest.param(lambda: grouped_bars("t", [], [], y_label="y"), id="grouped-empty"),
        pytest.param(lambda: grouped_bars("t", ["a"], [("s", [None])], y_label="y"), id="grouped-none"),
        pytest.param(lambda: line_chart("t", [], x_label="x", y_label="y"), id="line-empty"),
        pytest.param(lambda: line_chart("t", [(math.nan, None, "")], x_label="x", y_label="y"), id="line-nan"),
        pytest.param(lambda: importance_chart({}), id="importance-empty"),
        pytest.param(
            lambda: calibration_chart([{"mean_predicted": math.nan, "observed_rate": None}]), id="calibration-nan"
        ),
        pytest.param(lambda: attack_chart([("attack", math.nan, None)]), id="attack-nan"),
        pytest.param(lambda: group_chart("sex", {"groups": {}}), id="groups-empty"),
    ],
)
def test_nothing_to_draw_says_no_data_yet(svg):
    root = parsed(svg())
    assert NO_DATA in texts(root)
    assert not marks(root, "rect") and not marks(root, "circle")


def test_the_card_charts_draw_the_gate_details_they_are_given():
    views = {
        "groups": {
            "Female": {"rows": 3000, "selection_rate": 0.1, "tpr": 0.6, "fpr": 0.02, "judged": True},
            EVIL: {"rows": 12, "selection_rate": 0.5, "tpr": math.nan, "fpr": 0.1, "judged": False},
        }
    }
    root = parsed(group_chart(EVIL, views))
    assert len(tips(root, "rect")) == 5 and f"{EVIL}, FPR: 0.1 (12 rows; too few rows to judge)" in tips(root, "rect")
    table = [
        {"mean_predicted": 0.05, "observed_rate": 0.04, "rows": 5000},
        {"mean_predicted": 0.95, "observed_rate": 0.97, "rows": 800},
    ]
    assert tips(parsed(calibration_chart(table)), "circle")[0].endswith("(5,000 rows)")
    assert len(tips(parsed(importance_chart({EVIL: 0.7, "age": 0.3})), "rect")) == 2
    attack = parsed(attack_chart([("attack success rate", 0.4, 0.35), ("membership advantage", -0.01, 0.1)]))
    assert [b.get("fill") == RED for b in marks(attack, "rect")] == [True, False]


def _profile(category: str) -> Profile:
    return Profile(
        spec="m",
        version="1",
        dataset_version="d",
        train_rows=100,
        features={
            "age": Binned(counts=(10, 50, 40, 0), edges=(30.0, 50.0)),
            "job": Binned(counts=(60, 40, 0), categories=(category, "b", "(missing)")),
        },
        scores=Binned(counts=(50, 50, 0), edges=(0.5,)),
        metrics={},
    )


def test_the_monitoring_shares_have_one_panel_per_feature_and_flag_the_drifted_ones():
    counts = {"age": (5, 20, 70, 5), "job": (0, 0, 0), "score": (40, 60, 0)}
    panels = shares_chart(_profile(EVIL), counts, {"age"})
    roots = [parsed(p + "</svg>") for p in panels.split("</svg>")[:-1]]
    assert [r.find(f"{SVG}title").text for r in roots] == ["age (drift)", "job", "score"]
    age, job, score = roots
    # bins with rows on either side, two bars each: age keeps all 4 (its missing bin has window rows)
    assert len(tips(age, "rect")) == 8 and "≥50, window: 70.00% (reference 40 rows, window 70 rows)" in tips(
        age, "rect"
    )
    assert any(t.get("fill") == RED for t in age.iter(f"{SVG}text"))  # the drifted title
    assert all(r.get("fill") != RED for r in marks(job, "rect"))
    assert len(tips(job, "rect")) == 4 and f"{EVIL}, reference: 60.00% (reference 60 rows, window 0 rows)" in tips(
        job, "rect"
    )
    assert len(tips(score, "rect")) == 4


def test_the_monitoring_page_escapes_names_and_draws_every_panel():
    doc = {
        "window": {"start": "2026-12-01", "end": "2026-12-02"},
        "alpha": 0.01,
        "psi_threshold": 0.1,
        "assessment": {
            "spec": "m",
            "version": "1",
            "rows": 100,
            "drifted": True,
            "judged": True,
            "reasons": [],
            "drift": [{"name": "job", "psi": 0.3, "p_value": 1e-5, "drifted": True, "reason": "shifted"}],
        },
        "decision": {"action": "retrain", "reason": "drift"},
    }
    page = render_html(doc, _profile(EVIL), {"job": (10, 90, 0)})
    assert "<script" not in page and page.count("<svg") == 1


def test_the_card_and_the_monitoring_report_draw_without_matplotlib():
    # the charts are on the gate's decision path: a plotting library's import alone cost a second there
    code = (
        "import sys; from ativo.evaluate.card import importance_chart; import ativo.monitor.report;"
        "importance_chart({'a': 1.0}); assert 'matplotlib' not in sys.modules, 'matplotlib was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
