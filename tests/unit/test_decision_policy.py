"""Per-group decision thresholds (ativo.model.policy.DecisionPolicy): validation, groups of encoded rows, decisions."""

from __future__ import annotations

import numpy as np
import pytest

from ativo.hashing import bucket
from ativo.model.encoding import encode_records
from ativo.model.policy import DecisionPolicy


def rule(p0=1.0, op0=(">", 0.6), op1=("<", 0.2)) -> dict:
    return {
        "p0": p0,
        "operation0": {"operator": op0[0], "threshold": op0[1]},
        "operation1": {"operator": op1[0], "threshold": op1[1]},
    }


def policy(spec, groups: dict, attributes=("sex", "race")) -> DecisionPolicy:
    return DecisionPolicy(spec, {"kind": "threshold_optimizer", "attributes": list(attributes), "groups": groups})


def matrix(spec, *people: dict, n: int = 1) -> np.ndarray:
    return encode_records(spec, [dict(p) for p in people for _ in range(n)])


MALE_WHITE = {"sex": "Male", "race": "White", "age": 40}
FEMALE_BLACK = {"sex": "Female", "race": "Black", "age": 30}


@pytest.mark.parametrize(
    ("doc", "names"),
    [
        pytest.param({}, "'attributes'", id="nothing"),
        pytest.param({"groups": {}}, "'attributes'", id="no-attributes"),
        pytest.param({"attributes": [], "groups": {}}, "'attributes'", id="empty-attributes"),
        pytest.param({"attributes": "sex", "groups": {}}, "'attributes' (a list)", id="attributes-not-a-list"),
        pytest.param({"attributes": ["sex"]}, "'groups'", id="no-groups"),
        pytest.param({"attributes": ["sex"], "groups": [rule()]}, "'groups' (an object)", id="groups-not-an-object"),
        pytest.param(
            {"attributes": ["sex", "customer_id"], "groups": {}},
            "['customer_id'] are not features of adult_income",
            id="unknown-attribute",
        ),
        pytest.param(
            {"attributes": ["sex"], "groups": {"Male": rule(op0=(">=", 0.5))}},
            "groups.Male.operation0.operator must be '>' or '<'",
            id="bad-operator",
        ),
        pytest.param(
            {"attributes": ["sex"], "groups": {"Male": {"p0": 1, "operation0": {"operator": ">"}}}},
            "groups.Male.operation1.operator",
            id="missing-operation",
        ),
        pytest.param(
            {"attributes": ["sex"], "groups": {"Female": rule(p0=1.5)}},
            "groups.Female.p0 must be a probability",
            id="p0-above-1",
        ),
        pytest.param({"attributes": ["sex"], "groups": {"Female": rule(p0=-0.1)}}, "groups.Female.p0", id="p0-below-0"),
        pytest.param(
            {"attributes": ["sex"], "groups": {"Female": {k: v for k, v in rule().items() if k != "p0"}}},
            "groups.Female.p0",
            id="p0-missing",
        ),
    ],
)
def test_an_invalid_policy_is_refused_naming_the_field(spec, doc, names):
    with pytest.raises(ValueError, match="decision policy") as err:
        DecisionPolicy(spec, doc)
    assert names in str(err.value)


@pytest.mark.parametrize("p0", [0, 0.0, 0.5, 1, 1.0, "0.25"], ids=["0", "0.0", "0.5", "1", "1.0", "string"])
def test_a_p0_inside_the_unit_interval_is_accepted(spec, p0):
    assert policy(spec, {"Male & White": rule(p0=p0)}).groups["Male & White"]["p0"] == p0


def test_a_valid_policy_keeps_what_serving_needs(spec):
    p = policy(spec, {"Male & White": rule()}, attributes=("race", "sex"))
    names = spec.data_schema.feature_names
    assert p.kind == "threshold_optimizer" and p.attributes == ["race", "sex"]
    assert p.columns == [names.index("race"), names.index("sex")]
    assert p.default == spec.gates.decision_threshold


@pytest.mark.parametrize(
    ("attributes", "person", "group"),
    [
        pytest.param(("sex", "race"), MALE_WHITE, "Male & White", id="male-white"),
        pytest.param(("sex", "race"), FEMALE_BLACK, "Female & Black", id="female-black"),
        pytest.param(
            ("sex", "race"),
            {"sex": "Female", "race": "Amer-Indian-Eskimo"},
            "Female & Amer-Indian-Eskimo",
            id="first-category",
        ),
        pytest.param(("race", "sex"), MALE_WHITE, "White & Male", id="in-the-policy-s-attribute-order"),
        pytest.param(("race",), {"race": "Asian-Pac-Islander"}, "Asian-Pac-Islander", id="one-attribute"),
        pytest.param(("sex", "race"), {"race": "White"}, "nan & White", id="missing-value"),
        pytest.param(("sex", "race"), {"sex": "Martian", "race": "White"}, "nan & White", id="unknown-category"),
        pytest.param(("workclass",), {"workclass": "Without-pay"}, "Without-pay", id="last-category"),
    ],
)
def test_group_of_an_encoded_row(spec, attributes, person, group):
    [row] = matrix(spec, person)
    assert policy(spec, {}, attributes=attributes).group_of(row) == group


def test_group_of_reads_the_category_by_its_position_in_the_spec(spec):
    """Codes are positions in the spec's category list: code i of `race` is the spec's i-th race."""
    races = spec.data_schema.feature("race").categories
    p = policy(spec, {}, attributes=("race",))
    column = spec.data_schema.feature_names.index("race")
    for code, race in enumerate(races):
        row = np.full(len(spec.data_schema.features), np.nan, dtype=np.float32)
        row[column] = code
        assert p.group_of(row) == race


@pytest.mark.parametrize(
    ("op", "threshold", "scores", "decisions"),
    [
        pytest.param(">", 0.6, [0.1, 0.6, 0.6001, 0.95], [0, 0, 1, 1], id="greater-than-is-strict"),
        pytest.param("<", 0.3, [0.1, 0.2999, 0.3, 0.8], [1, 1, 0, 0], id="less-than-is-strict"),
        pytest.param(">", 0.0, [0.0, 1e-6, 0.5], [0, 1, 1], id="greater-than-zero"),
    ],
)
def test_decide_applies_the_group_s_rule(spec, op, threshold, scores, decisions):
    p = policy(spec, {"Male & White": rule(p0=1, op0=(op, threshold))})
    keys = [f"k{i}" for i in range(len(scores))]
    out, used = p.decide(matrix(spec, MALE_WHITE, n=len(scores)), np.array(scores), keys)
    assert out.dtype == np.int8 and out.tolist() == decisions
    assert used == [threshold] * len(scores)


@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.2], ids=["reference-0.5", "raised-0.7", "lowered-0.2"])
def test_a_group_the_policy_does_not_know_gets_the_spec_s_global_threshold(spec, threshold):
    s = spec.model_copy(update={"gates": spec.gates.model_copy(update={"decision_threshold": threshold})})
    p = policy(s, {"Male & White": rule(p0=1, op0=(">", 0.9))})
    scores = np.array([threshold - 0.01, threshold, threshold + 0.01])
    out, used = p.decide(matrix(s, FEMALE_BLACK, n=3), scores, ["a", "b", "c"])
    assert out.tolist() == [0, 1, 1]  # at or above the global threshold, as without a policy
    assert used == [threshold] * 3


def test_one_batch_mixes_known_and_unknown_groups(spec):
    p = policy(spec, {"Male & White": rule(p0=1, op0=(">", 0.8))})
    rows = matrix(spec, MALE_WHITE, FEMALE_BLACK, MALE_WHITE, {"race": "White"})
    out, used = p.decide(rows, np.array([0.7, 0.7, 0.9, 0.7]), ["a", "b", "c", "d"])
    assert out.tolist() == [0, 1, 1, 1] and used == [0.8, 0.5, 0.8, 0.5]


KEYS = [f"customer-{i}" for i in range(400)]


@pytest.mark.parametrize(
    ("p0", "threshold"),
    [pytest.param(1, 0.6, id="p0-1-always-operation0"), pytest.param(0, 0.2, id="p0-0-always-operation1")],
)
def test_p0_at_the_ends_always_picks_one_operation(spec, p0, threshold):
    p = policy(spec, {"Male & White": rule(p0=p0, op0=(">", 0.6), op1=("<", 0.2))})
    scores = np.linspace(0, 1, len(KEYS))
    out, used = p.decide(matrix(spec, MALE_WHITE, n=len(KEYS)), scores, KEYS)
    assert used == [threshold] * len(KEYS)
    expected = scores > 0.6 if p0 == 1 else scores < 0.2
    assert out.tolist() == expected.astype(int).tolist()


@pytest.mark.parametrize("p0", [0.25, 0.5, 0.9], ids=["p0-0.25", "p0-0.5", "p0-0.9"])
def test_the_choice_is_drawn_from_a_stable_hash_of_the_key(spec, p0):
    groups = {"Male & White": rule(p0=p0, op0=(">", 0.6), op1=("<", 0.2))}
    rows, scores = matrix(spec, MALE_WHITE, n=len(KEYS)), np.full(len(KEYS), 0.5)
    out, used = policy(spec, groups).decide(rows, scores, KEYS)
    first = [bucket(k, "decision-policy") / 100 < p0 for k in KEYS]
    assert used == [0.6 if f else 0.2 for f in first]
    assert abs(sum(first) / len(KEYS) - p0) < 0.08  # the share of operation0 is p0
    # the same key gets the same decision: on another call, from another policy object, in another order
    again, again_used = policy(spec, groups).decide(rows, scores, KEYS)
    assert again.tolist() == out.tolist() and again_used == used
    back, back_used = policy(spec, groups).decide(rows[::-1], scores[::-1], KEYS[::-1])
    assert back.tolist()[::-1] == out.tolist() and back_used[::-1] == used


def test_the_same_key_gets_the_same_decision_for_the_same_score(spec):
    """Near a group's two thresholds, a repeated caller is not flipped between operations at random."""
    groups = {"Male & White": rule(p0=0.5, op0=(">", 0.4), op1=(">", 0.6))}
    p = policy(spec, groups)
    row = matrix(spec, MALE_WHITE)
    answers = {k: {int(p.decide(row, np.array([0.5]), [k])[0][0]) for _ in range(5)} for k in KEYS[:50]}
    assert all(len(a) == 1 for a in answers.values())
    assert {next(iter(a)) for a in answers.values()} == {0, 1}  # both operations do occur across keys
