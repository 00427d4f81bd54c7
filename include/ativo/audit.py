"""The append-only audit log: every erasure receipt and every refused attempt, each row chained to the one before.

A row's ``sha256`` is the hash of the previous row's hash and its own canonical content, so changing or removing
any row breaks every hash after it (:func:`verify_chain` says where).

No row holds a raw subject id, record id or key: a value a caller gave that cannot be trusted (a refused attempt's
DAG id or action, an invalid request's subjects, a queue message's key) is kept as its keyed pseudonym under the
payload's :data:`PSEUDONYMS` key (:func:`pseudonyms`). The chain cannot be edited, so a raw id in it would keep every
erasure of that subject open forever (the verification scan searches this table like any other).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Text, case, cast, insert, null, or_, select

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


@dataclass(frozen=True)
class ChainCheck:
    """The verdict on the whole chain: rows checked, and each problem (the row and what is wrong), oldest first."""

    rows: int
    problems: tuple[str, ...]
    first_bad: int | None
    """The ``seq`` of the first row whose link or content does not verify (None when the chain is intact)."""

    @property
    def ok(self) -> bool:
        """Whether every row links to the one before and matches its own hash."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """``{"ok", "rows", "first_bad", "problems"}`` (JSON-ready)."""
        return {"ok": self.ok, "rows": self.rows, "first_bad": self.first_bad, "problems": list(self.problems)}


def check_chain(engine: Engine) -> ChainCheck:
    """Recompute every row's hash and link, oldest first: where the chain breaks, if it does."""
    return _extend(_EMPTY, GENESIS, entries(engine))[0]


_EMPTY = ChainCheck(rows=0, problems=(), first_bad=None)


def _extend(check: ChainCheck, prev: str, rows: list[dict[str, Any]]) -> tuple[ChainCheck, str]:
    """``check`` carried on over ``rows`` (the next ones, oldest first) whose first must link to ``prev``.

    Returns:
        (the verdict on the rows checked before and these, the stored hash of the last row: where the next links).
    """
    problems = list(check.problems)
    first_bad = check.first_bad
    for r in rows:
        found = len(problems)
        if r["prev_sha256"] != prev:
            problems.append(f"row {r['seq']}: links to {r['prev_sha256'][:12]}, the row before is {prev[:12]}")
        want = _row_hash(r["prev_sha256"], _iso(r["at"]), r["kind"], r["actor"], r["ref"], r["payload"])
        if want != r["sha256"]:
            problems.append(f"row {r['seq']} ({r['kind']} {r['ref']}): content does not match its hash")
        if first_bad is None and len(problems) > found:
            first_bad = int(r["seq"])
        prev = r["sha256"]
    return ChainCheck(rows=check.rows + len(rows), problems=tuple(problems), first_bad=first_bad), prev


@dataclass(frozen=True)
class _Checked:
    """What this process last found of one database's chain."""

    upto: int
    """The highest ``seq`` checked (0: none)."""
    stored: str
    """The digest of the stored values of the rows up to it, as they were checked (:func:`_read_since`)."""
    last: str
    """The stored hash of row ``upto`` (the next row must link to it)."""
    check: ChainCheck


_checked: dict[str, _Checked] = {}
_checked_lock = threading.Lock()


def _read_since(conn: Connection, after: int) -> tuple[str, str, int, list[dict[str, Any]]]:
    """Every row's stored values and the rows after ``after`` to check, in one statement (one snapshot).

    Each row's digest is of its columns cast to text, unparsed (no JSON decoded, no date read, no hash recomputed):
    the same digest means the same stored bytes, so a verdict reached on them still holds. A digest that differs for
    another reason (a database that renders a date in another zone, rows read in another order) only costs a full
    check.

    Returns:
        (digest of the rows up to ``after``, digest of every row, the highest ``seq`` (0: none), the rows after
        ``after`` as :func:`entries` gives them, oldest first).
    """
    c = audit_log.c
    stored = [cast(col, Text) for col in (c.at, c.kind, c.actor, c.ref, c.payload, c.prev_sha256, c.sha256)]
    parsed = [case((c.seq > after, c.at), else_=null()), case((c.seq > after, c.payload), else_=null())]
    digest, prefix, top, rows = hashlib.sha256(), None, 0, []
    for seq, *raw, at, payload in conn.execute(select(c.seq, *stored, *parsed).order_by(c.seq)):
        if seq > after:
            if prefix is None:
                prefix = digest.copy()
            _, kind, actor, ref, _, prev, sha = raw
            rows.append(
                {"seq": seq, "at": at, "kind": kind, "actor": actor, "ref": ref, "payload": payload}
                | {"prev_sha256": prev, "sha256": sha}
            )
        digest.update(repr((seq, *raw)).encode())  # the repr of ints and strs: read back one way only, no collision
        top = seq
    return (prefix or digest).hexdigest(), digest.hexdigest(), top, rows


def check_chain_since_last(engine: Engine) -> ChainCheck:
    """:func:`check_chain`'s verdict, recomputing only the hashes of the rows added since this process last checked.

    The log only grows, so a verdict holds for the rows it covered as long as they are stored as they were: the rows
    up to the highest ``seq`` checked last are read back as stored bytes and compared with a digest of what was
    checked; only when they match are the rows after it checked (linked to the last one's stored hash). Any change of
    an already-checked row (its content, its hash, a row removed or put back) makes the digest differ, and the whole
    chain is checked again, as :func:`check_chain` does.

    What that costs: no cheaper sound check of the checked rows exists here. The stored hash of the last checked row
    would miss an edit of an earlier row's content that leaves the hashes alone (the edit :func:`check_chain` exists
    to find), and the database keeps no change counter; so each call still reads every row, but as raw text, with no
    JSON parsed and no hash recomputed: about a quarter of a full check (50,000 rows on SQLite: 0.4 s against
    1.9 s). The first call of a process, and a call after a change, pay a full check with that read. One verdict per
    database URL is kept per process.
    """
    key = engine.url.render_as_string(hide_password=False)
    with _checked_lock, engine.connect() as conn:  # one check at a time: concurrent views would only repeat it
        known = _checked.get(key)
        prefix, stored, top, rows = _read_since(conn, known.upto if known else 0)
        if known is not None and prefix == known.stored:
            check, prev = known.check, known.last
        else:
            if known is not None and known.upto > 0:  # an already-checked row changed: every row is checked again
                prefix, stored, top, rows = _read_since(conn, 0)
            check, prev = _EMPTY, GENESIS
        check, last = _extend(check, prev, rows)
        _checked[key] = _Checked(upto=top, stored=stored, last=last, check=check)
    return check


def verify_chain(engine: Engine) -> dict[str, Any]:
    """Recompute every row's hash: ``{"ok", "rows", "problems"}`` (a problem names the row and what is wrong)."""
    checked = check_chain(engine)
    return {"ok": checked.ok, "rows": checked.rows, "problems": list(checked.problems)}


def _utc(value: Any) -> dt.datetime:
    """A stored ``at`` as an aware UTC datetime (SQLite hands naive UTC back, PostgreSQL the session's zone)."""
    if not isinstance(value, dt.datetime):
        value = dt.datetime.fromisoformat(str(value))
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def recent(
    engine: Engine,
    *,
    kind: str | None = None,
    actor: str | None = None,
    spec: str | None = None,
    since: dt.datetime | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """The newest audit rows that match every filter given, newest first, ``at`` as an aware UTC datetime.

    Args:
        engine: the platform DB.
        kind: only rows of this kind (exact).
        actor: only rows by this actor (exact: ``key:<name>``, an Airflow user name, ``erasure``, …).
        spec: only rows about this spec: its ``ref``, or the spec named in an erasure receipt (whose ref is the
            request id).
        since: only rows written at or after this instant (a naive one is UTC).
        limit: at most this many rows (1 or more).

    Raises:
        ValueError: ``limit`` is below 1.
    """
    if limit < 1:
        raise ValueError(f"limit: at least 1 row, not {limit}")
    q = select(audit_log).order_by(audit_log.c.seq.desc()).limit(limit)
    if kind:
        q = q.where(audit_log.c.kind == kind)
    if actor:
        q = q.where(audit_log.c.actor == actor)
    if spec:
        q = q.where(or_(audit_log.c.ref == spec, audit_log.c.payload[("receipt", "spec")].as_string() == spec))
    if since is not None:
        # SQLite keeps naive UTC text: the bound instant must be UTC too for the comparison to mean anything
        at = since.replace(tzinfo=dt.UTC) if since.tzinfo is None else since.astimezone(dt.UTC)
        q = q.where(audit_log.c.at >= at)
    with engine.connect() as conn:
        return [{**dict(r), "at": _utc(r["at"])} for r in conn.execute(q).mappings()]


def kinds(engine: Engine) -> list[str]:
    """Every kind of row the log holds, sorted (what a filter may ask for)."""
    with engine.connect() as conn:
        return sorted(str(k) for (k,) in conn.execute(select(audit_log.c.kind).distinct()))


def one_line(text: Any, width: int | None = None) -> str:
    """``text`` on one line, cut to ``width`` characters (an ellipsis says so).

    Every character a terminal or a browser would act on rather than show (controls, line breaks, bidi overrides:
    what :meth:`str.isprintable` refuses) is written as its escape, so a hostile actor or reason shows as text.
    """
    out = "".join(
        c if c.isprintable() else f"\\u{ord(c):04x}" if ord(c) > 0xFF else f"\\x{ord(c):02x}" for c in str(text)
    )
    return out if width is None or len(out) <= width else out[: max(width - 1, 0)] + "…"


def summary(payload: Any, width: int | None = None) -> str:
    """One line of a row's payload: ``key=value`` in key order, cut to ``width`` characters.

    A nested document shows as its size, a string with a space or a quote is quoted. The payload is what the writer
    kept, which is never a secret nor a raw subject id (the module's docstring); nothing is added here.
    """
    if not isinstance(payload, Mapping):
        return one_line(canonical(payload).decode(), width)
    parts = []
    for key in sorted(payload):
        v = payload[key]
        if isinstance(v, Mapping):
            shown = f"{{{len(v)} field{'' if len(v) == 1 else 's'}}}"
        elif isinstance(v, list) and (len(v) > 5 or any(isinstance(x, (Mapping, list)) for x in v)):
            shown = f"[{len(v)} item{'' if len(v) == 1 else 's'}]"
        elif isinstance(v, str):
            shown = json.dumps(v, ensure_ascii=False) if (not v or any(c.isspace() or c in '="' for c in v)) else v
        else:
            shown = canonical(v).decode()
        parts.append(f"{key}={shown}")
    return one_line(" ".join(parts), width)
