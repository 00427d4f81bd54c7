"""Drifted traffic (``ativo traffic --drift``): shifts parsed with the field and the reason, applied to real rows.

The shifts apply to rows of the pinned reference data as :func:`ativo.serve.traffic.reference_rows` samples them; the
replay test answers ``/predict`` through the API's own request validation, so a shifted row the API would refuse
fails here.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import httpx
import pytest

from ativo.errors import AtivoError
from ativo.serve import traffic
from ativo.serve.traffic import Shift, ShiftInvalid, apply_shifts, parse_shift, reference_rows
from ativo.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
N = 3000
GUAM = "Outlying-US(Guam-USVI-etc)"  # a category with brackets and dashes


@pytest.fixture(scope="module")
def compas():
    return load_spec(ROOT / "include" / "specs" / "compas_recidivism.yaml")


@pytest.fixture(scope="module")
def adult_rows(spec, reference_dir):
    return reference_rows(spec, reference_dir, N, seed=0)


@pytest.fixture(scope="module")
def compas_rows(compas, reference_dir):
    return reference_rows(compas, reference_dir, N, seed=0)


def column(sample, name):
    return [r["features"][name] for r, _ in sample]


def assert_only_changed(before, after, name):
    """Every feature but ``name``, every subject id and every label are as they were."""
    assert len(before) == len(after)
    for (r0, y0), (r1, y1) in zip(before, after, strict=True):
        assert y0 == y1 and r0["subject_id"] == r1["subject_id"]
        assert {k: v for k, v in r0["features"].items() if k != name} == {
            k: v for k, v in r1["features"].items() if k != name
        }


# --- parsing --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shift", "written"),
    [
        ("age=+10", Shift("age", "add", 10), "age=+10"),
        ("age=-4", Shift("age", "add", -4), "age=-4"),
        (" hours_per_week = *1.25 ", Shift("hours_per_week", "scale", 1.25), "hours_per_week=*1.25"),
        ("age=+2.5", Shift("age", "add", 2.5), "age=+2.5"),
        ("sex=Female:0.8", Shift("sex", "share", 0.8, "Female"), "sex=Female:0.8"),
        (f"native_country={GUAM}:1", Shift("native_country", "share", 1, GUAM), f"native_country={GUAM}:1"),
        ("label=flip:0.3", Shift("label", "flip", 0.3), "label=flip:0.3"),
        ("label=flip:0", Shift("label", "flip", 0), "label=flip:0"),
    ],
    ids=["add", "subtract", "scale-with-blanks", "add-fraction", "share", "share-odd-category", "flip", "flip-none"],
)
def test_a_shift_is_parsed_and_written_back_as_given(spec, text, shift, written):
    parsed = parse_shift(spec, text)
    assert parsed == shift
    assert str(parsed) == written and parse_shift(spec, str(parsed)) == parsed


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("agee=+1", ["'agee' is not a feature of adult_income", "age, workclass, fnlwgt", "label=flip:P"]),
        ("sex=+1", ["sex is a category", "sex=CATEGORY:SHARE", "+X, -X and *X are for numeric features"]),
        ("sex=*2", ["sex is a category", "+X, -X and *X are for numeric features"]),
        ("sex=Female", ["sex is a category", "sex=CATEGORY:SHARE"]),
        ("sex=Other:0.5", ["sex: 'Other' is not one of its categories (Female, Male)"]),
        ("sex=Female:1.5", ["sex: share 1.5 of 'Female' is outside [0, 1]"]),
        ("sex=Female:-0.1", ["sex: share -0.1 of 'Female' is outside [0, 1]"]),
        ("sex=Female:most", ["sex: share 'most' is not a number"]),
        ("label=flip:1.2", ["label: flip probability 1.2 is outside [0, 1]"]),
        ("label=flip:-0.5", ["label: flip probability -0.5 is outside [0, 1]"]),
        ("label=flip:", ["label: flip probability '' is not a number"]),
        ("label=0.3", ["label: the label takes label=flip:P", "got '0.3'"]),
        ("age=10", ["age is numeric: give age=+X, age=-X or age=*X", "got '10'"]),
        ("age=Female:0.5", ["age is numeric", "got 'Female:0.5'"]),
        ("age=+ten", ["age: amount 'ten' is not a number"]),
        ("age=+-3", ["age: amount '-3' is not a number"]),
        ("age=*nan", ["age: factor 'nan' is not a number"]),
        ("age=+inf", ["age: amount 'inf' is not a number"]),
        ("age", ["expected FEATURE=+X, FEATURE=-X, FEATURE=*X, FEATURE=CATEGORY:SHARE or label=flip:P"]),
        ("=+3", ["expected FEATURE=+X"]),
        ("age=", ["expected FEATURE=+X"]),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_a_bad_shift_is_refused_with_the_field_and_the_reason(spec, text, says):
    with pytest.raises(ShiftInvalid) as err:
        parse_shift(spec, text)
    message = str(err.value)
    assert message.startswith(f"drift {text!r}: ")
    for part in says:
        assert part in message
    assert isinstance(err.value, AtivoError)  # the CLI prints it as one line and exits 2


def test_a_category_is_checked_against_the_spec_it_is_sent_to(spec, compas):
    assert parse_shift(compas, "race=African-American:0.7").category == "African-American"
    with pytest.raises(ShiftInvalid, match="race: 'African-American' is not one of its categories .*White"):
        parse_shift(spec, "race=African-American:0.7")


# --- numeric shifts -------------------------------------------------------------------------------------------------


def test_adding_moves_every_value_by_x_clipped_to_the_declared_maximum(spec, adult_rows):
    out = apply_shifts(spec, adult_rows, [parse_shift(spec, "age=+10")])
    before, after = column(adult_rows, "age"), column(out, "age")
    assert all(isinstance(a, int) for a in after)
    assert after == [min(b + 10, 90) for b in before]  # the spec's max: the API refuses 91
    free = [(b, a) for b, a in zip(before, after, strict=True) if b <= 80]
    assert sum(a for _, a in free) / len(free) == sum(b for b, _ in free) / len(free) + 10
    assert sum(after) / N > sum(before) / N + 9.5  # few rows are clipped
    assert_only_changed(adult_rows, out, "age")
    assert column(adult_rows, "age") == before  # the sample given is not changed


def test_subtracting_keeps_missing_values_missing_and_respects_the_minimum(compas, compas_rows):
    name = "days_b_screening_arrest"  # a nullable int: some records have no arrest date
    before = column(compas_rows, name)
    assert None in before
    out = apply_shifts(compas, compas_rows, [parse_shift(compas, f"{name}=-30")])
    after = column(out, name)
    assert [a is None for a in after] == [b is None for b in before]
    assert after == [None if b is None else max(b - 30, -1000) for b in before]
    assert_only_changed(compas_rows, out, name)


def test_a_fractional_shift_of_an_int_feature_is_rounded(spec, adult_rows):
    out = apply_shifts(spec, adult_rows, [parse_shift(spec, "age=+2.5")])
    assert column(out, "age") == [min(round(b + 2.5), 90) for b in column(adult_rows, "age")]
    assert all(isinstance(a, int) for a in column(out, "age"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hours_per_week=*1.5", lambda v: min(round(v * 1.5), 99)),
        ("hours_per_week=*0.5", lambda v: max(round(v * 0.5), 1)),
        ("capital_gain=*0", lambda v: 0),
    ],
    ids=["up-to-max", "down-to-min", "zero"],
)
def test_scaling_multiplies_rounds_and_clips(spec, adult_rows, text, expected):
    s = parse_shift(spec, text)
    out = apply_shifts(spec, adult_rows, [s])
    after = column(out, s.field)
    assert after == [expected(v) for v in column(adult_rows, s.field)]
    assert all(isinstance(a, int) for a in after)
    assert_only_changed(adult_rows, out, s.field)


def test_a_float_feature_stays_a_float_within_its_bounds(spec):
    from ativo.spec import Feature

    ratio = Feature(name="ratio", type="float", min=0, max=1, nullable=True)
    schema = spec.data_schema.model_copy(update={"features": (*spec.data_schema.features, ratio)})
    spec_f = spec.model_copy(update={"data_schema": schema})
    sample = [({"features": {"ratio": v}, "subject_id": str(i)}, 0) for i, v in enumerate([0.2, 0.8, None])]
    out = apply_shifts(spec_f, sample, [parse_shift(spec_f, "ratio=*1.5")])
    assert column(out, "ratio") == [pytest.approx(0.3), 1.0, None]
    assert isinstance(column(out, "ratio")[0], float)


# --- category shares ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("which", "text"),
    [
        ("adult", "sex=Female:0.8"),  # up from ~1/3
        ("adult", "workclass=Private:0.2"),  # down from ~3/4, on a nullable feature
        ("adult", "race=White:0"),
        ("adult", "race=Other:1"),
        ("compas", "race=Asian:0.3"),  # a rare category made common
        ("compas", "race=Caucasian:0.34"),  # about where it is already
    ],
    ids=lambda v: v if v not in ("adult", "compas") else None,
)
def test_a_category_share_lands_on_the_target_taking_rows_proportionally(request, which, text):
    spec = request.getfixturevalue("spec" if which == "adult" else "compas")
    sample = request.getfixturevalue(f"{which}_rows")
    s = parse_shift(spec, text)
    out = apply_shifts(spec, sample, [s], seed=5)
    before, after = column(sample, s.field), column(out, s.field)

    assert [a is None for a in after] == [b is None for b in before]  # missing values stay missing
    held = sum(b is not None for b in before)
    now, was = Counter(after), Counter(before)
    assert abs(now[s.category] - s.value * held) <= 1
    assert set(now) - {None} <= set(spec.data_schema.feature(s.field).categories)
    moved = [(b, a) for b, a in zip(before, after, strict=True) if b != a]
    assert all(s.category in (b, a) for b, a in moved)  # a row only ever moves to or from the category
    others = {c: k for c, k in was.items() if c not in (s.category, None)}
    total = sum(others.values())
    into = Counter(b for b, a in moved if a == s.category)  # rows taken from each other category
    out_to = Counter(a for b, a in moved if b == s.category)  # rows given to each
    gained = now[s.category] - was[s.category]
    change = into if gained > 0 else out_to
    for c, k in others.items():
        assert abs(change[c] - abs(gained) * k / total) <= 1, c  # in proportion to the category's size
    assert_only_changed(sample, out, s.field)


def test_a_share_is_seeded(spec, adult_rows):
    s = [parse_shift(spec, "sex=Female:0.8")]
    first, again, other = (apply_shifts(spec, adult_rows, s, seed=k) for k in (1, 1, 2))
    assert first == again
    assert column(first, "sex") != column(other, "sex")
    assert Counter(column(first, "sex")) == Counter(column(other, "sex"))


# --- labels ---------------------------------------------------------------------------------------------------------


def test_a_label_flip_flips_about_p_of_the_labels_and_touches_no_feature(spec, adult_rows):
    out = apply_shifts(spec, adult_rows, [parse_shift(spec, "label=flip:0.3")], seed=0)
    flipped = sum(y0 != y1 for (_, y0), (_, y1) in zip(adult_rows, out, strict=True))
    assert flipped == 891  # seed 0: the same rows every time
    assert abs(flipped - 0.3 * N) < 3 * math.sqrt(N * 0.3 * 0.7)
    assert all(y1 == 1 - y0 for (_, y0), (_, y1) in zip(adult_rows, out, strict=True) if y0 != y1)
    assert [r for r, _ in out] == [r for r, _ in adult_rows]  # concept drift: the rows are the same
    assert apply_shifts(spec, adult_rows, [parse_shift(spec, "label=flip:0.3")], seed=0) == out
    assert apply_shifts(spec, adult_rows, [parse_shift(spec, "label=flip:0.3")], seed=1) != out


@pytest.mark.parametrize(("p", "flipped"), [(0, 0), (1, N)])
def test_flip_probability_bounds(spec, adult_rows, p, flipped):
    out = apply_shifts(spec, adult_rows, [parse_shift(spec, f"label=flip:{p}")])
    assert sum(y0 != y1 for (_, y0), (_, y1) in zip(adult_rows, out, strict=True)) == flipped


def test_shifts_apply_in_order_and_the_same_shift_twice_is_not_undone(spec, adult_rows):
    up_then_scale = apply_shifts(spec, adult_rows, [parse_shift(spec, "age=+10"), parse_shift(spec, "age=*0.5")])
    assert column(up_then_scale, "age") == [max(round(min(b + 10, 90) * 0.5), 17) for b in column(adult_rows, "age")]
    flip = parse_shift(spec, "label=flip:0.5")
    twice = apply_shifts(spec, adult_rows, [flip, flip])
    assert twice != adult_rows  # each shift draws its own rows: a second flip does not restore the first's labels


def test_no_shift_is_the_sample_unchanged(spec, adult_rows):
    assert apply_shifts(spec, adult_rows, []) == adult_rows


# --- replay and the command line ------------------------------------------------------------------------------------


def test_replay_sends_shifted_rows_the_api_accepts_and_flipped_labels(spec, reference_dir, monkeypatch):
    from ativo.serve.validation import RequestParser

    parser = RequestParser(spec)  # the API's own validation: a shifted value beyond a bound is a 422 there
    sent: dict[str, list] = {"rows": [], "labels": []}

    def api(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/predict"):
            parsed = parser.parse(request.content)  # raises RequestInvalid on a row the API would refuse
            rows = json.loads(request.content)["rows"]
            sent["rows"] += rows
            base = len(sent["rows"]) - len(rows)
            preds = [
                {"prediction_id": f"p{base + i}", "route": "champion", "version": "1"} for i in range(len(parsed.keys))
            ]
            return httpx.Response(200, json={"predictions": preds})
        sent["labels"] += json.loads(request.content)["labels"]
        return httpx.Response(200, json={"accepted": 1})

    monkeypatch.setattr(traffic, "new_client", lambda: httpx.Client(transport=httpx.MockTransport(api)))
    shifts = [parse_shift(spec, t) for t in ("age=+30", "hours_per_week=*3", "sex=Female:0.9", "label=flip:0.3")]
    out = traffic.replay("http://api.test/models/adult_income", "k", spec, reference_dir, 500, seed=3, drift=shifts)

    assert out == {
        "rows": 500,
        "routes": {"champion v1": 500},
        "labels": 500,
        "drift": ["age=+30", "hours_per_week=*3", "sex=Female:0.9", "label=flip:0.3"],
    }
    expected = apply_shifts(spec, reference_rows(spec, reference_dir, 500, seed=3), shifts, seed=3)
    assert sent["rows"] == [r for r, _ in expected]
    assert [fb["label"] for fb in sent["labels"]] == [y for _, y in expected]
    assert max(r["features"]["age"] for r in sent["rows"]) == 90


def test_the_traffic_command_takes_repeated_drift_options():
    from ativo.cli import build_parser

    args = build_parser().parse_args(
        ["traffic", "--rows", "50", "--seed", "4", "--drift", "age=+10", "--drift", "label=flip:0.2"]
    )
    assert args.drift == ["age=+10", "label=flip:0.2"] and args.rows == 50 and args.seed == 4
    assert build_parser().parse_args(["traffic"]).drift == []


def test_the_traffic_command_refuses_a_bad_shift_before_sending_anything(ativo_home, capsys, monkeypatch):
    from ativo.cli import main

    def no_sending(*args, **kwargs):
        raise AssertionError("replay was called")

    monkeypatch.setattr(traffic, "replay", no_sending)
    code = main(
        [
            "traffic",
            "--spec",
            "adult_income",
            "--key",
            "k",
            "--url",
            "http://127.0.0.1:9",
            "--drift",
            "age=+10",
            "--drift",
            "sex=Other:0.5",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "error: drift 'sex=Other:0.5': sex: 'Other' is not one of its categories (Female, Male)" in err
