"""A spec file is parsed once per content: an edit is seen at the next load, an invalid file fails every time."""

from __future__ import annotations

from pathlib import Path

import pytest

from ativo.errors import SpecError
from ativo.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = (ROOT / "include" / "specs" / "adult_income.yaml").read_text()


def test_an_edit_of_the_same_length_is_seen_at_once(tmp_path):
    path = tmp_path / "adult_income.yaml"
    path.write_text(REFERENCE)
    first = load_spec(path)
    assert load_spec(path) == first
    assert "min_auc: 0.88" in REFERENCE
    path.write_text(REFERENCE.replace("min_auc: 0.88", "min_auc: 0.77"))  # same size, same second
    assert load_spec(path).gates.performance.min_auc == 0.77
    assert first.gates.performance.min_auc == 0.88  # what was loaded before is not changed under its holder


def test_an_invalid_spec_fails_at_every_load(tmp_path):
    path = tmp_path / "adult_income.yaml"
    path.write_text(REFERENCE.replace("min_auc: 0.88", "min_auc: [0.88"))
    for _ in range(2):
        with pytest.raises(SpecError, match="not valid YAML"):
            load_spec(path)
    path.write_text(REFERENCE.replace("min_auc: 0.88", "min_auc: 1.88"))
    for _ in range(2):
        with pytest.raises(SpecError, match="gates.performance.min_auc"):
            load_spec(path)
