"""Stable hashing, and the platform's secret that keys the hashes of personal data.

Request keys hash to the same bucket on every server, process and restart; subjects in the prediction log and ids
derived from PII columns are keyed with the pepper.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import SecretStr

    from ativo.config import Settings


def bucket(key: str, salt: str = "") -> float:
    """Where ``key`` falls in [0, 100): a stable BLAKE2b hash of the salted key."""
    digest = hashlib.blake2b(f"{salt}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 * 100.0


def load_pepper(path: Path, pepper: SecretStr | None = None) -> bytes:
    """The secret that pseudonymises subjects: ``pepper`` when set, else the key file (created once, mode 0600).

    Args:
        path: the key file.
        pepper: ``settings.subject_pepper`` (``ATIVO_SUBJECT_PEPPER``), which wins over the file.
    """
    if pepper is not None and pepper.get_secret_value():
        return pepper.get_secret_value().encode()
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    created = secrets.token_hex(32).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it a moment ago
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as fh:
        fh.write(created)
    return created


def platform_pepper(settings: Settings) -> bytes:
    """The platform's pepper (``ATIVO_SUBJECT_PEPPER``, else ``<home>/serve/subject_pepper``)."""
    return load_pepper(settings.home / "serve" / "subject_pepper", settings.subject_pepper)


def id_key(settings: Settings) -> bytes:
    """The key of ids derived from PII columns: derived from the pepper, so it is as secret and as stable."""
    return hmac.new(platform_pepper(settings), b"ativo/derived-ids", hashlib.sha256).digest()


def pseudonymise(subject: str, pepper: bytes) -> str:
    """A subject id as the log stores it: keyed HMAC-SHA256, so the id itself is never written."""
    return hmac.new(pepper, subject.encode(), hashlib.sha256).hexdigest()[:32]


def pseudonymiser(pepper: bytes) -> Callable[[str], str]:
    """:func:`pseudonymise` with the key schedule done once (a copy per subject: about half the cost)."""
    keyed = hmac.new(pepper, digestmod=hashlib.sha256)

    def one(subject: str) -> str:
        h = keyed.copy()
        h.update(subject.encode())
        return h.hexdigest()[:32]

    return one
