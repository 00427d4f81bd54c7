"""API keys of the inference API: stored as sha256 hashes with roles, never in clear.

The key file (``<home>/serve/api_keys.json``, mode 0600) holds ``{"keys": [{"name", "sha256", "roles",
"created"}]}``. A key is shown once, when it is created (``ativo api-key create NAME --role predict``). Roles:
``predict`` (``/predict``, ``/explain``), ``feedback`` (``/feedback``, delayed labels) and ``op`` (every
state-changing CLI command, and filing erasure requests from the CLI or the queue).

Only the platform's own key file (:func:`platform_key_file`) authorises a state change: a key file a caller names
(``ativo serve --keys``, ``ATIVO_SERVE_KEYS``) only lets a server answer API calls. :func:`operator` is the one check
the CLI makes; its refusals say why without the key itself (:func:`fingerprint` names an unknown key).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from ativo.errors import AtivoError
from ativo.files import replace_file

ROLES = ("predict", "feedback", "op")
OPERATOR_ROLE = "op"


class KeyFileError(AtivoError):
    """The key file cannot be read or a key request is invalid."""


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class Caller:
    """Who a valid key belongs to."""

    name: str
    roles: frozenset[str]

    @property
    def identity(self) -> str:
        """The actor a state change by this key records: ``key:<name>``."""
        return f"key:{self.name}"


class ApiKeys:
    """The keys a server accepts (read once at start; restart or SIGHUP-free reload via :meth:`reload`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._by_hash: dict[str, Caller] = {}
        self.reload()

    def reload(self) -> None:
        """Read the key file again."""
        by_hash = {}
        for entry in read_keys(self.path):
            by_hash[entry["sha256"]] = Caller(entry["name"], frozenset(entry["roles"]))
        self._by_hash = by_hash

    def __len__(self) -> int:
        return len(self._by_hash)

    def check(self, raw: str | None) -> Caller | None:
        """The caller a presented key belongs to, or None (lookup by hash: timing reveals nothing of the key)."""
        if not raw:
            return None
        return self._by_hash.get(_hash(raw))


def read_keys(path: Path) -> list[dict]:
    """The entries of a key file ([] when it does not exist).

    Raises:
        KeyFileError: unreadable or malformed, naming the field.
    """
    if not path.exists():
        return []
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise KeyFileError(f"API key file {path}: cannot read it as JSON: {err}") from None
    keys = doc.get("keys") if isinstance(doc, dict) else None
    if not isinstance(keys, list):
        raise KeyFileError(f"API key file {path}: field 'keys' must be a list")
    for i, entry in enumerate(keys):
        for field in ("name", "sha256", "roles"):
            if field not in entry:
                raise KeyFileError(f"API key file {path}: field 'keys[{i}].{field}' is missing")
        unknown = set(entry["roles"]) - set(ROLES)
        if unknown:
            raise KeyFileError(f"API key file {path}: field 'keys[{i}].roles': unknown role(s) {sorted(unknown)}")
    return keys


def create_key(path: Path, name: str, roles: tuple[str, ...] = ("predict",)) -> str:
    """Add a key for ``name`` with ``roles``; returns the key (the only time it is shown).

    Raises:
        KeyFileError: empty name, unknown role, or a key of that name exists already.
    """
    if not name.strip():
        raise KeyFileError("api key: field 'name' may not be empty")
    unknown = sorted(set(roles) - set(ROLES))
    if unknown or not roles:
        raise KeyFileError(f"api key: field 'roles': {unknown or 'none given'} (known roles: {', '.join(ROLES)})")
    keys = read_keys(path)
    if any(k["name"] == name for k in keys):
        raise KeyFileError(f"api key: field 'name': a key named {name!r} exists already (revoke it first)")
    raw = "ak_" + secrets.token_urlsafe(24)
    keys.append(
        {
            "name": name,
            "sha256": _hash(raw),
            "roles": sorted(set(roles)),
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
    )
    _write(path, keys)
    return raw


def revoke_key(path: Path, name: str) -> bool:
    """Remove the key called ``name``; returns whether one was there."""
    keys = read_keys(path)
    kept = [k for k in keys if k["name"] != name]
    if len(kept) == len(keys):
        return False
    _write(path, kept)
    return True


def platform_key_file(home: Path) -> Path:
    """The platform's own key file under its home: the only keys that authorise a state change."""
    return home / "serve" / "api_keys.json"


def fingerprint(raw: str) -> str:
    """A name for a presented key that is not the key: ``sha256:`` and the first 12 hex digits of its hash."""
    return "sha256:" + _hash(raw)[:12]


def has_operator(path: Path) -> bool:
    """Whether the key file holds a key with the ``op`` role."""
    return any(OPERATOR_ROLE in entry["roles"] for entry in read_keys(path))


class NotOperator(AtivoError):
    """A presented key does not authorise a state change; ``why`` names what is missing (never the key)."""

    def __init__(self, why: str, actor: str) -> None:
        super().__init__(why)
        self.why, self.actor = why, actor


def operator(path: Path, raw: str | None, *, given_by: str = "--key or ATIVO_OP_KEY") -> Caller:
    """The caller whose key ``raw`` holds the ``op`` role in the platform key file ``path``.

    A key file that others may read or write (or a link) grants nothing: anyone could have added a key to it.

    Raises:
        NotOperator: no key, an unknown key, a key without ``op``, or an untrusted key file; ``actor`` is the key's
            identity or fingerprint, or ``anonymous``.
        KeyFileError: the key file cannot be read.
    """
    if not raw:
        raise NotOperator(f"no key given ({given_by})", "anonymous")
    if path.is_symlink() or (path.exists() and path.stat().st_mode & 0o077):
        raise NotOperator(
            f"the platform key file {path} is a link or open to other users (chmod 600 it)", fingerprint(raw)
        )
    caller = ApiKeys(path).check(raw)
    if caller is None:
        raise NotOperator("unknown key", fingerprint(raw))
    if OPERATOR_ROLE not in caller.roles:
        raise NotOperator(f"key {caller.name!r} lacks the role {OPERATOR_ROLE!r}", caller.identity)
    return caller


def _write(path: Path, keys: list[dict]) -> None:
    replace_file(path, json.dumps({"keys": keys}, indent=2))
