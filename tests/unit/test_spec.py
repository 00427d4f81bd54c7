from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from ativo.errors import SpecError
from ativo.spec import load_spec, load_specs, parse_spec

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = yaml.safe_load((ROOT / "include" / "specs" / "adult_income.yaml").read_text())


def mutated(change) -> dict:
    doc = copy.deepcopy(REFERENCE)
    change(doc)
    return doc


def test_reference_spec_loads_with_its_contract():
    spec = load_spec(ROOT / "include" / "specs" / "adult_income.yaml")
    assert spec.name == "adult_income"
    assert spec.data_schema.target.column == "income"
    assert set(spec.protected_attributes) == {"sex", "race"}
    assert "customer_id" not in spec.data_schema.feature_names
    assert len(spec.content_hash()) == 64


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        pytest.param(lambda d: d.update(colour="blue"), "colour", "unknown key", id="unknown-top-level-key"),
        pytest.param(lambda d: d["split"].update(seeed=1), "split.seeed", "unknown key", id="unknown-nested-key"),
        pytest.param(lambda d: d["split"].update(seed="abc"), "split.seed", "integer", id="wrong-type"),
        pytest.param(lambda d: d["schema"].pop("target"), "schema.target", "Field required", id="missing-target"),
        pytest.param(
            lambda d: d.update(protected_attributes=["sex", "customer_id"]),
            "protected_attributes",
            "both a protected attribute and an identifier",
            id="protected-and-identifier",
        ),
        pytest.param(
            lambda d: d["schema"]["features"][0].update(min=100, max=1),
            "schema.features.0",
            "greater than max",
            id="min-above-max",
        ),
        pytest.param(
            lambda d: d["schema"]["features"].append({"name": "customer_id", "type": "int"}),
            "schema",
            "identifier/PII columns may not be features",
            id="identifier-as-feature",
        ),
    ],
)
def test_invalid_spec_names_file_and_field(change, field, reason):
    with pytest.raises(SpecError) as err:
        parse_spec(mutated(change), "include/specs/adult_income.yaml")
    msg = str(err.value)
    assert "include/specs/adult_income.yaml" in msg
    assert field in msg
    assert reason in msg


def test_name_must_match_file(tmp_path):
    path = tmp_path / "other.yaml"
    path.write_text(yaml.safe_dump(REFERENCE))
    with pytest.raises(SpecError, match=r"other.yaml.*'name'.*must match the file name"):
        load_spec(path)


def test_not_yaml_is_a_clear_error(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match=r"broken.yaml: not valid YAML"):
        load_spec(path)


def test_one_invalid_spec_does_not_hide_the_valid_ones(tmp_path):
    (tmp_path / "adult_income.yaml").write_text(yaml.safe_dump(REFERENCE))
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(mutated(lambda d: d.update(name="broken", colour=1))))
    specs, errors = load_specs(tmp_path)
    assert [s.name for s in specs] == ["adult_income"]
    assert len(errors) == 1 and "broken.yaml" in str(errors[0]) and "'colour'" in str(errors[0])
