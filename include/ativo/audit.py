"""The append-only audit log: every erasure receipt and every refused attempt, each row chained to the one before.

A row's ``sha256`` is the hash of the previous row's hash and its own canonical content, so changing or removing
any row breaks every hash after it (:func:`verify_chain` says where).

No row holds a raw subject id, record id or key: a value a caller gave that cannot be trusted (a refused attempt's
DAG id or action, an invalid request's subjects, a queue message's key) is kept as its keyed pseudonym under the
payload's :data:`PSEUDONYMS` key (:func:`pseudonyms`). The chain cannot be edited, so a raw id in it would keep every
erasure of that subject open forever (the verification scan searches this table like any other).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, insert, select

from ativo.store.db import audit_log, utcnow, write_lock

GENESIS = "0" * 64
PSEUDONYMS = "pseudonyms"
"""The payload key of the keyed pseudonyms of values a caller gave (label → pseudonym)."""
_DOMAIN = "ativo/audit\x00"


def pseudonyms(values: Mapping[str, Any], pepper: bytes) -> dict[str, str]:
    """Each value a caller gave, as the keyed pseudonym an audit row holds instead (label → pseudonym).

    The platform's one keyed hash (:func:`ativo.serve.predlog.pseudonymise`) of the value in the audit log's own
    domain: a string as it is, anything else as its canonical JSON. Whoever holds the pepper can tell whether a
    refused attempt named a given subject or key (call this with it); nobody else can, and the value itself is never
    written. It is never the prediction log's pseudonym of the same id: that one must be gone once the subject is
    erased (the verification scan looks for it, and the chain cannot be edited).

    Args:
        values: label (a field name the platform chose, e.g. ``"subjects"``, ``"dag_id"``) → the untrusted value.
        pepper: the platform's pepper (:func:`ativo.hashing.platform_pepper`).
    """
    from ativo.hashing import pseudonymise

    return {
        label: pseudonymise(_DOMAIN + (v if isinstance(v, str) else canonical(v).decode()), pepper)
        for label, v in values.items()
    }


def canonical(doc: Any) -> bytes:
    """The bytes a document is hashed as: sorted keys, no spaces, UTF-8."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def content_hash(doc: Any) -> str:
    """sha256 of :func:`canonical`."""
    return hashlib.sha256(canonical(doc)).hexdigest()


def _row_hash(prev: str, at: str, kind: str, actor: str, ref: str, payload: Any) -> str:
    return content_hash({"prev": prev, "at": at, "kind": kind, "actor": actor, "ref": ref, "payload": payload})


def append(engine: Engine, kind: str, actor: str, ref: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Add one row at the end of the chain (writers take turns) and return it."""
    with engine.begin() as conn:
        write_lock(conn, "ativo.audit_log")
        last = conn.execute(select(audit_log.c.sha256).order_by(audit_log.c.seq.desc()).limit(1)).first()
        prev = last[0] if last else GENESIS
        at = utcnow()
        row = {
            "at": at,
            "kind": kind,
            "actor": actor,
            "ref": ref,
            "payload": payload,
            "prev_sha256": prev,
            "sha256": _row_hash(prev, _iso(at), kind, actor, ref, payload),
        }
        seq = conn.execute(insert(audit_log).values(**row)).inserted_primary_key[0]  # type: ignore[index]
    return {**row, "seq": seq, "at": _iso(at)}


def entries(engine: Engine, kind: str | None = None, ref: str | None = None) -> list[dict[str, Any]]:
    """Audit rows, oldest first (optionally of one kind, or about one ref)."""
    q = select(audit_log).order_by(audit_log.c.seq)
    if kind:
        q = q.where(audit_log.c.kind == kind)
    if ref:
        q = q.where(audit_log.c.ref == ref)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(q).mappings()]


def _iso(value: Any) -> str:
    import datetime as dt

    if isinstance(value, dt.datetime):
        # SQLite hands naive UTC back, PostgreSQL the session's zone: the hash is over UTC
        value = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
        return value.isoformat()
    return str(value)


def verify_chain(engine: Engine) -> dict[str, Any]:
    """Recompute every row's hash: ``{"ok", "rows", "problems"}`` (a problem names the row and what is wrong)."""
    problems: list[str] = []
    prev = GENESIS
    rows = entries(engine)
    for r in rows:
        if r["prev_sha256"] != prev:
            problems.append(f"row {r['seq']}: links to {r['prev_sha256'][:12]}, the row before is {prev[:12]}")
        want = _row_hash(r["prev_sha256"], _iso(r["at"]), r["kind"], r["actor"], r["ref"], r["payload"])
        if want != r["sha256"]:
            problems.append(f"row {r['seq']} ({r['kind']} {r['ref']}): content does not match its hash")
        prev = r["sha256"]
    return {"ok": not problems, "rows": len(rows), "problems": problems}
