"""Files replaced whole: a reader sees the old content or the new, never half; a secret is never readable by others.

:func:`replace_file` is the one way Ativo writes a file that others read while it runs (the settings file, Airflow's
passwords file, the API keys, a lake partition or a logged batch rewritten by an erasure): the data goes to a new
temporary file beside the target (a name no other writer uses, created exclusively with its final mode, so it is
never readable by others even for a moment), is flushed to disk, and is renamed over the target.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

PRIVATE = 0o600  # readable and writable by the owner only: secrets, personal data


def replace_file(path: Path, data: bytes | str, *, mode: int | None = PRIVATE) -> None:
    """Write ``data`` over ``path`` atomically.

    Args:
        path: the file to write (its directory is created when missing).
        data: the new content (a ``str`` is written as UTF-8).
        mode: the file's permission bits; ``None`` keeps those of the file it replaces (0600 for a new one).
    """
    if mode is None:
        try:
            mode = path.stat().st_mode & 0o777
        except FileNotFoundError:
            mode = PRIVATE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode & PRIVATE)  # no one else reads it while written
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
            os.fchmod(fh.fileno(), mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def make_private(path: Path) -> None:
    """Take the group's and others' access away from ``path`` when it has any (a file written by an older release)."""
    if path.exists() and path.stat().st_mode & 0o077:
        path.chmod(path.stat().st_mode & 0o700)
