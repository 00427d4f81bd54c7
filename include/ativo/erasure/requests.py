"""Erasure requests: recorded and acknowledged before anything is processed, coalesced into batches.

A request names a spec and subject ids. :func:`file_request` writes it to the platform DB and returns its id; only
then does anything else happen (a queue or a triggerer that is down loses nothing: the DB is the record). Whether a
subject is in the data is never said at filing time: an unknown subject is acknowledged like any other and
reported "not found" in the receipt. Only the ``op`` role may file one; a refused attempt is audited.

Requests filed within the spec's ``erasure.window_minutes`` of the oldest pending one are handled as one batch.

Everything a request carries is checked before anything is stored (:func:`validate`): a string where the list of
subjects belongs, an id shorter than the spec's ``erasure.min_subject_id_length``, a value that is not a string. The
refusal names the field and the reason, never the value; the audit log keeps the value's keyed pseudonym only.

One batch has one owner at a time: claiming it takes the spec's lease in the platform DB (``erasure_leases``), which
every checkpoint renews and closing (or keeping it open) releases; a second claimant is told who holds it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import re
import secrets
import socket
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, update

from ativo import audit
from ativo.errors import AtivoError
from ativo.store.db import erasure_batches, erasure_leases, erasure_requests, utcnow, write_lock

REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
MAX_SUBJECTS = 100_000
MAX_SUBJECT_ID_LENGTH = 128
DEFAULT_MIN_SUBJECT_ID_LENGTH = 4  # the spec's erasure.min_subject_id_length when a caller has no spec at hand
PENDING = ("received", "open")
NO_SPEC = "(no such spec)"
"""The ``ref`` of a refusal that named no spec of the platform (the name it gave is kept as a pseudonym)."""
LEASE_S = 2 * 3600.0
"""How long a batch's owner may go without a checkpoint before another may take the batch over."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ErasureRefused(AtivoError):
    """The caller may not file erasure requests (HTTP 403 on every path); the attempt is audited."""


class InvalidRequest(AtivoError):
    """A request that names no subject, a malformed id, or an id already used for other subjects.

    ``field`` and ``reason`` say what is wrong; ``hostile`` holds the offending values (label → value) for the audit
    log to pseudonymise. They are never part of the message.
    """

    def __init__(
        self, message: str, *, field: str = "", reason: str = "", hostile: Mapping[str, Any] | None = None
    ) -> None:
        """See the class."""
        super().__init__(message)
        self.field, self.reason, self.hostile = field, reason, dict(hostile or {})


class ErasureBusy(AtivoError):
    """Another owner (a DAG run, an ``ativo erasure run``) is processing the spec's erasure batch now."""


def _bad(field: str, reason: str, value: Any = None, *, hostile: bool = True) -> InvalidRequest:
    return InvalidRequest(
        f"field '{field}': {reason}", field=field, reason=reason, hostile={field: value} if hostile else None
    )


@dataclass(frozen=True)
class Ack:
    """What the caller gets back, before any processing."""

    request_id: str
    spec: str
    subjects: int
    status: str
    received_at: str
    duplicate: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return dict(self.__dict__)


def _aware(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


def receipt_ref(subject: str, pepper: bytes) -> str:
    """How a receipt names a subject: a keyed hash of its own (not the log's pseudonym, which must be gone)."""
    return hmac.new(pepper, b"ativo/receipt\x00" + subject.encode(), hashlib.sha256).hexdigest()[:20]


def new_request_id() -> str:
    """A fresh request id: ``er-<UTC date>-<random>``."""
    return f"er-{utcnow():%Y%m%d}-{secrets.token_hex(6)}"


def request_id_for(source: str) -> str:
    """The request id of a request that came without one, derived from where it came from (a run or message id).

    Filing it again (a retried task, a redelivered message) files the same request. ``er-<16 hex digits>``: it
    passes :data:`REQUEST_ID` whatever ``source`` holds (a DAG run id has ``+`` and ``:``).
    """
    digest = hashlib.sha256(b"ativo/request-id\x00" + source.encode()).hexdigest()
    return f"er-{digest[:16]}"


def validate(
    subjects: Any, request_id: Any = None, *, min_length: int = DEFAULT_MIN_SUBJECT_ID_LENGTH
) -> tuple[list[str], str | None]:
    """The subject ids (sorted, without repeats) and the request id of a request, checked before anything is stored.

    Args:
        subjects: what the caller sent as ``subjects``: a list of subject id strings.
        request_id: what the caller sent as ``request_id`` (None or empty: one is made when it is filed).
        min_length: the spec's ``erasure.min_subject_id_length``.

    Raises:
        InvalidRequest: the first problem, naming the field and the reason and saying what to send instead (never
            quoting the value, which may be a subject id or a key).
    """
    if subjects is None:
        raise _bad("subjects", 'is missing; send a JSON list of subject ids, e.g. ["<id>"]', hostile=False)
    if isinstance(subjects, str | bytes):
        raise _bad(
            "subjects",
            "is a string where a list belongs (it would be read as one subject id per "
            'character); send a JSON list of subject ids, e.g. ["<id>"]',
            subjects,
        )
    if not isinstance(subjects, list | tuple | set | frozenset):
        raise _bad("subjects", f"must be a list of subject id strings, not {_kind(subjects)}", subjects)
    if len(subjects) > MAX_SUBJECTS:
        raise _bad(
            "subjects",
            f"{len(subjects)} subjects, at most {MAX_SUBJECTS} per request; split the request",
            hostile=False,
        )
    out: list[str] = []
    for i, s in enumerate(subjects):
        where = f"subjects[{i}]"
        if not isinstance(s, str):
            raise _bad(where, f"must be a string, not {_kind(s)}; send every subject id as a JSON string", s)
        s = s.strip()
        if not s:
            raise _bad(where, "is empty; give the subject's id", hostile=False)
        if _CONTROL.search(s):
            raise _bad(where, "holds a control character; give the subject's id as it is in the data", s)
        if len(s) < min_length:
            raise _bad(
                where,
                f"is {len(s)} character(s) long, shorter than the spec's "
                f"erasure.min_subject_id_length ({min_length}): a short id is found everywhere; give the "
                "subject's whole id",
                s,
            )
        if len(s) > MAX_SUBJECT_ID_LENGTH:
            raise _bad(where, f"is longer than {MAX_SUBJECT_ID_LENGTH} characters; give the subject's id", s)
        out.append(s)
    if not out:
        raise _bad("subjects", "names no subject; give at least one subject id", hostile=False)
    ids = sorted(set(out))
    if request_id is None or request_id == "":
        return ids, None
    if not isinstance(request_id, str):
        raise _bad("request_id", f"must be a string, not {_kind(request_id)}; leave it out and one is made", request_id)
    if not REQUEST_ID.fullmatch(request_id):
        raise _bad(
            "request_id",
            "must be 1-128 letters, digits or . _ : - (the first a letter or digit); leave it out and one is made",
            request_id,
        )
    from ativo.store.redaction import pattern

    named = pattern(ids)
    if named is not None and (request_id in ids or named.search(request_id.encode())):
        raise _bad(
            "request_id",
            "holds one of the request's subject ids: a request id outlives the erasure (the "
            "receipt, the audit log), so it may not name a subject; leave it out and one is made",
            request_id,
        )
    return ids, request_id


def _kind(value: Any) -> str:
    """A value's JSON type, for a refusal (never the value)."""
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        dict: "an object",
        list: "a list",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def refuse(
    engine: Engine,
    *,
    spec: str,
    actor: str,
    channel: str,
    why: str,
    pepper: bytes | None = None,
    hostile: Mapping[str, Any] | None = None,
) -> ErasureRefused:
    """Audit a refused attempt and return the error to raise (callers answer 403).

    Args:
        engine: the platform DB.
        spec: the spec the attempt was about; a name that is no spec of the platform (a caller's ``--spec`` or
            path, unchecked) is kept as its keyed pseudonym only.
        actor: the authenticated identity (or the key's name).
        channel: cli | rest | page | queue.
        why: the reason, made only of values the platform trusts (roles, methods, key names).
        pepper: the platform's pepper (read from the settings when a value must be pseudonymised without it).
        hostile: values the caller gave (a DAG id, an action, a key): the audit row keeps their keyed pseudonyms,
            never the values.
    """
    hostile = dict(hostile or {})
    if spec and spec != NO_SPEC and spec not in _spec_names():  # a caller's --spec or path: its pseudonym only
        hostile["spec"], spec = spec, NO_SPEC
    payload: dict[str, Any] = {"channel": channel, "why": why}
    if hostile:
        if pepper is None:
            from ativo.config import load_settings
            from ativo.hashing import platform_pepper

            pepper = platform_pepper(load_settings())
        payload[audit.PSEUDONYMS] = audit.pseudonyms(hostile, pepper)
    audit.append(engine, "erasure_refused", actor or "anonymous", spec, payload)
    return ErasureRefused(f"erasure requests need the 'op' role: {why} (the attempt is recorded in the audit log)")


def _spec_names() -> set[str]:
    """The names of the platform's specs (none when they cannot be read: every name is then treated as a caller's)."""
    try:
        from ativo.config import load_settings
        from ativo.spec import load_specs

        return {s.name for s in load_specs(load_settings().specs_dir)[0]}
    except Exception:
        return set()


def invalid(
    engine: Engine,
    err: InvalidRequest,
    *,
    spec: str,
    actor: str,
    channel: str,
    pepper: bytes,
    context: Mapping[str, str] | None = None,
) -> InvalidRequest:
    """Audit an invalid request (the field, the reason, the offending values' pseudonyms) and return ``err``.

    Args:
        engine: the platform DB.
        err: what :func:`validate` (or filing) found.
        spec: the spec it was filed for.
        actor: who filed it.
        channel: cli | rest | page | queue.
        pepper: the platform's pepper.
        context: values the platform trusts that say which attempt it was (a queue message id).
    """
    payload: dict[str, Any] = {"channel": channel, "field": err.field, "why": err.reason or str(err), **(context or {})}
    if err.hostile:
        payload[audit.PSEUDONYMS] = audit.pseudonyms(err.hostile, pepper)
    audit.append(engine, "erasure_invalid", actor or "anonymous", spec, payload)
    return err


def file_request(
    engine: Engine,
    *,
    spec: str,
    subjects: Any,
    pepper: bytes,
    actor: str,
    channel: str,
    request_id: Any = None,
    min_subject_length: int = DEFAULT_MIN_SUBJECT_ID_LENGTH,
    context: Mapping[str, str] | None = None,
) -> Ack:
    """Record a request (one transaction) and acknowledge it.

    The same id filed again with the same subjects is acknowledged again (a retried call, a redelivered message);
    with other subjects it is refused. Nothing is stored for a request that does not pass :func:`validate`; the
    attempt is audited (:func:`invalid`).

    Args:
        engine: the platform DB.
        spec: the spec's name.
        subjects: the subject ids (a list of strings).
        pepper: the platform's pepper.
        actor: who files it.
        channel: cli | rest | page | queue.
        request_id: the caller's id for the request; None or empty: one is made.
        min_subject_length: the spec's ``erasure.min_subject_id_length``.
        context: values the platform trusts that an audited refusal names (a queue message id).

    Raises:
        InvalidRequest: no subjects, a malformed subject or request id, or an id reused for other subjects.
    """
    from ativo.hashing import pseudonymise

    try:
        ids, given = validate(subjects, request_id, min_length=min_subject_length)
    except InvalidRequest as err:
        raise invalid(engine, err, spec=spec, actor=actor, channel=channel, pepper=pepper, context=context) from None
    rid = given or new_request_id()
    pseudonyms = [pseudonymise(s, pepper) for s in ids]
    with engine.begin() as conn:
        write_lock(conn, f"erasure/{spec}")
        row = conn.execute(select(erasure_requests).where(erasure_requests.c.request_id == rid)).mappings().first()
        if row is None:
            now = utcnow()
            conn.execute(
                insert(erasure_requests).values(
                    request_id=rid,
                    spec=spec,
                    subjects=ids,
                    pseudonyms=pseudonyms,
                    actor=actor,
                    channel=channel,
                    status="received",
                    received_at=now,
                )
            )
            return Ack(rid, spec, len(ids), "received", now.isoformat())
        if row["status"] == "closed":  # its pseudonyms became receipt references when it closed
            pseudonyms = [receipt_ref(s, pepper) for s in ids]
        if row["spec"] == spec and sorted(row["pseudonyms"]) == sorted(pseudonyms):
            return Ack(rid, spec, len(ids), row["status"], _aware(row["received_at"]).isoformat(), duplicate=True)
    # audited once the filing transaction is over (the audit log takes its own write lock)
    reused = _bad("request_id", "was already filed for other subjects or another spec; use a new id", hostile=False)
    raise invalid(engine, reused, spec=spec, actor=actor, channel=channel, pepper=pepper, context=context)


def open_request_ids(engine: Engine) -> list[str]:
    """Every request not closed yet (whose working columns still name its subjects)."""
    with engine.connect() as conn:
        rows = conn.execute(select(erasure_requests.c.request_id).where(erasure_requests.c.status != "closed"))
        return [r[0] for r in rows]


def get(engine: Engine, request_id: str) -> dict[str, Any] | None:
    """One request's row (None when there is no such request)."""
    with engine.connect() as conn:
        row = conn.execute(select(erasure_requests).where(erasure_requests.c.request_id == request_id)).mappings()
        found = row.first()
    return dict(found) if found else None


@dataclass(frozen=True)
class RequestSummary:
    """What may be shown of a request: its status, who filed it and how, and how many subjects (never which)."""

    request_id: str
    spec: str
    status: str
    channel: str
    actor: str
    batch_id: int | None
    received_at: dt.datetime
    closed_at: dt.datetime | None
    reason: str | None
    receipt_sha256: str | None
    subjects: int


def recent(engine: Engine, limit: int) -> list[RequestSummary]:
    """The ``limit`` latest requests of every spec, newest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(erasure_requests).order_by(erasure_requests.c.received_at.desc()).limit(limit)
        ).mappings()
        return [
            RequestSummary(
                request_id=r["request_id"],
                spec=r["spec"],
                status=r["status"],
                channel=r["channel"],
                actor=r["actor"],
                batch_id=r["batch_id"],
                received_at=r["received_at"],
                closed_at=r["closed_at"],
                reason=r["reason"],
                receipt_sha256=r["receipt_sha256"],
                subjects=len(r["pseudonyms"] or []),
            )
            for r in rows
        ]


@dataclass(frozen=True)
class RequestState:
    """Where one request stands: its spec, its status and when it was received (aware UTC)."""

    spec: str
    status: str
    received_at: dt.datetime


def states(engine: Engine) -> list[RequestState]:
    """The spec, status and receipt time of every request (for SLA figures)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(erasure_requests.c.spec, erasure_requests.c.status, erasure_requests.c.received_at)
        ).all()
    return [RequestState(spec, status, _aware(received)) for spec, status, received in rows]


def is_working_value(
    table: str, column: str, row: Mapping[Any, Any], *, open_requests: Collection[str], batch_id: int | None
) -> bool:
    """Whether a value a scan of the platform DB finds is one the erasure holds on purpose, for now.

    These are the working columns: the subject ids and pseudonyms of the requests in ``open_requests`` (the purge
    needs them; they are emptied when a request closes) and the steps of the batch ``batch_id`` being processed.

    Args:
        table: the table's name.
        column: the column's name.
        row: the row the value is in.
        open_requests: ids of the requests whose working columns the scan exempts.
        batch_id: the batch whose steps the scan exempts (None: none).
    """
    if table == erasure_requests.name and column in ("subjects", "pseudonyms"):
        return row.get("request_id") in open_requests
    return table == erasure_batches.name and column == "steps" and row.get("id") == batch_id


def pending(engine: Engine, spec: str) -> list[dict[str, Any]]:
    """Requests of ``spec`` not yet in a batch that finished, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(erasure_requests)
            .where(erasure_requests.c.spec == spec, erasure_requests.c.status.in_(PENDING))
            .order_by(erasure_requests.c.received_at)
        ).mappings()
        return [dict(r) for r in rows]


@dataclass(frozen=True)
class Claimed:
    """The batch a run works on, or why there is none yet."""

    batch_id: int | None
    requests: list[str]
    wait_s: float = 0.0
    resumed: bool = False
    reason: str = ""
    busy: bool = False  # another owner holds the batch's lease (``reason`` says who, and until when)


@dataclass(frozen=True)
class Holder:
    """Who claims a batch: an ERASURE DAG run (``kind="dag"``, its run id), or a process (``ativo erasure run``).

    A DAG run takes over another DAG run's lease (the DAG has ``max_active_runs=1``: a new run's claim means the
    last one has ended); a process's lease is taken over once its process is gone from this host; any lease once it
    went :data:`LEASE_S` without a checkpoint.
    """

    name: str
    kind: str = "dag"
    host: str | None = None
    pid: int | None = None

    @classmethod
    def this_process(cls, run_id: str) -> Holder:
        """The calling process, as the holder named ``<run id>@<host>:<pid>``."""
        host, pid = socket.gethostname(), os.getpid()
        return cls(f"{run_id}@{host}:{pid}"[:250], "process", host, pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def _held_elsewhere(
    lease: Mapping[str, Any] | None, holder: Holder, batch_id: int, spec: str, now: dt.datetime
) -> str | None:
    """Why ``holder`` may not take ``batch_id`` now (None: it may)."""
    if lease is None or lease["batch_id"] != batch_id or lease["holder"] == holder.name:
        return None
    expires = _aware(lease["expires_at"])
    if expires <= now:
        return None  # no checkpoint for LEASE_S: its owner is stuck or gone
    if (
        lease["kind"] == "process"
        and lease["host"] == socket.gethostname()
        and lease["pid"]
        and not _alive(int(lease["pid"]))
    ):
        return None  # killed: its steps are checkpointed, the batch resumes
    if lease["kind"] == "dag" and holder.kind == "dag":
        return None  # max_active_runs=1: the run that held it has ended
    who = (
        f"the ERASURE DAG run {lease['holder']!r}"
        if lease["kind"] == "dag"
        else f"`ativo erasure run` (process {lease['pid']} on {lease['host']})"
    )
    return (
        f"erasure batch {batch_id} of {spec} is being processed by {who} since "
        f"{_aware(lease['acquired_at']).isoformat(timespec='seconds')} (last checkpoint "
        f"{_aware(lease['renewed_at']).isoformat(timespec='seconds')}): one batch has one owner at a time. Wait "
        "for it to finish (`ativo erasure status <request id>`, or the DAG run), then run again; an owner that "
        f"makes no progress is taken over after {expires.isoformat(timespec='seconds')}"
    )


def _take(
    conn: Connection, spec: str, batch_id: int, holder: Holder, now: dt.datetime, lease: Mapping[str, Any] | None
) -> None:
    values = {
        "batch_id": batch_id,
        "holder": holder.name,
        "kind": holder.kind,
        "host": holder.host,
        "pid": holder.pid,
        "renewed_at": now,
        "expires_at": now + dt.timedelta(seconds=LEASE_S),
    }
    if lease is None:
        conn.execute(insert(erasure_leases).values(spec=spec, acquired_at=now, **values))
    else:
        same = lease["holder"] == holder.name and lease["batch_id"] == batch_id
        conn.execute(
            update(erasure_leases)
            .where(erasure_leases.c.spec == spec)
            .values(acquired_at=lease["acquired_at"] if same else now, **values)
        )


def lease(engine: Engine, spec: str) -> dict[str, Any] | None:
    """The spec's erasure lease: who processes its batch now (None when nobody does)."""
    with engine.connect() as conn:
        row = conn.execute(select(erasure_leases).where(erasure_leases.c.spec == spec)).mappings().first()
    return dict(row) if row else None


def release(engine: Engine, spec: str, holder: Holder) -> None:
    """Give the spec's lease back, if ``holder`` still holds it (a process's ``finally``)."""
    with engine.begin() as conn:
        conn.execute(
            delete(erasure_leases).where(erasure_leases.c.spec == spec, erasure_leases.c.holder == holder.name)
        )


def claim_batch(
    engine: Engine,
    spec: str,
    window_minutes: float,
    run_id: str,
    *,
    now: dt.datetime | None = None,
    holder: Holder | None = None,
) -> Claimed:
    """The batch this run processes: an unfinished one (resumed), else every pending request, else none.

    Pending requests form a batch once the oldest has waited ``window_minutes``; before, the answer says how long.
    Claiming a batch takes the spec's lease for ``holder`` (default: the DAG run ``run_id``); while another owner
    holds it, nothing is claimed and the answer is ``busy`` with who holds it and until when.
    """
    now = now or utcnow()
    holder = holder or Holder(run_id)
    with engine.begin() as conn:
        write_lock(conn, f"erasure/{spec}")
        row = conn.execute(select(erasure_leases).where(erasure_leases.c.spec == spec)).mappings().first()
        held = dict(row) if row else None
        open_batch = (
            conn.execute(
                select(erasure_batches)
                .where(erasure_batches.c.spec == spec, erasure_batches.c.status.in_(("running", "open")))
                .order_by(erasure_batches.c.id)
                .limit(1)
            )
            .mappings()
            .first()
        )
        if open_batch is not None:
            busy = _held_elsewhere(held, holder, open_batch["id"], spec, now)
            if busy:
                return Claimed(None, [], reason=busy, busy=True)
            _take(conn, spec, open_batch["id"], holder, now, held)
            steps = dict(open_batch["steps"])
            if open_batch["status"] == "open":  # kept open by a failure: what failed is tried again
                steps = {
                    k: v
                    for k, v in steps.items()
                    if not (
                        (k.startswith("retrain/") and not (v or {}).get("ok"))
                        or (k.startswith("gates/") and not (v or {}).get("passed"))
                        or k in ("switch", "verify")
                    )
                }
            conn.execute(
                update(erasure_batches)
                .where(erasure_batches.c.id == open_batch["id"])
                .values(dag_run_id=run_id, status="running", steps=steps)
            )
            return Claimed(
                open_batch["id"],
                list(open_batch["requests"]),
                resumed=True,
                reason=f"resumed batch {open_batch['id']} (it did not finish)",
            )
        rows = conn.execute(
            select(erasure_requests.c.request_id, erasure_requests.c.received_at)
            .where(erasure_requests.c.spec == spec, erasure_requests.c.status.in_(PENDING))
            .order_by(erasure_requests.c.received_at)
        ).all()
        if not rows:
            return Claimed(None, [], reason=f"no pending erasure request for {spec}")
        oldest = _aware(rows[0][1])
        due = oldest + dt.timedelta(minutes=window_minutes)
        if due > now:
            return Claimed(
                None,
                [],
                wait_s=(due - now).total_seconds(),
                reason=f"{len(rows)} request(s) wait for the coalescing window to end at "
                f"{due.isoformat(timespec='seconds')}",
            )
        ids = [r[0] for r in rows]
        batch_id = conn.execute(
            insert(erasure_batches).values(
                spec=spec,
                requests=ids,
                status="running",
                steps={},
                dag_run_id=run_id,
                created_at=now,
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        _take(conn, spec, int(batch_id), holder, now, held)  # a lease left on a finished batch is stale
        conn.execute(
            update(erasure_requests)
            .where(erasure_requests.c.request_id.in_(ids))
            .values(status="processing", batch_id=batch_id, reason=None)
        )
    return Claimed(int(batch_id), ids, reason=f"batch {batch_id}: {len(ids)} request(s)")


def batch(engine: Engine, batch_id: int) -> dict[str, Any]:
    """A batch's row."""
    with engine.connect() as conn:
        row = conn.execute(select(erasure_batches).where(erasure_batches.c.id == batch_id)).mappings().first()
    if row is None:
        raise InvalidRequest(f"erasure batch {batch_id} does not exist")
    return dict(row)


def batch_requests(engine: Engine, batch_id: int) -> list[dict[str, Any]]:
    """The requests of a batch, oldest first."""
    ids = batch(engine, batch_id)["requests"]
    with engine.connect() as conn:
        rows = conn.execute(
            select(erasure_requests)
            .where(erasure_requests.c.request_id.in_(ids))
            .order_by(erasure_requests.c.received_at)
        ).mappings()
        return [dict(r) for r in rows]


def subjects_of(engine: Engine, batch_id: int) -> list[str]:
    """Every subject id the batch erases, sorted."""
    return sorted({s for r in batch_requests(engine, batch_id) for s in r["subjects"]})


def step_result(engine: Engine, batch_id: int, step: str) -> Any:
    """What a finished step recorded (None when it has not finished)."""
    return batch(engine, batch_id)["steps"].get(step)


def record_step(engine: Engine, batch_id: int, step: str, result: Any) -> None:
    """Checkpoint a finished step (a resumed run skips it)."""
    with engine.begin() as conn:
        write_lock(conn, f"erasure/batch/{batch_id}")
        row = conn.execute(select(erasure_batches.c.steps).where(erasure_batches.c.id == batch_id)).first()
        steps = dict(row[0]) if row else {}
        steps[step] = result
        conn.execute(update(erasure_batches).where(erasure_batches.c.id == batch_id).values(steps=steps))
        now = utcnow()  # progress: the owner's lease runs on
        conn.execute(
            update(erasure_leases)
            .where(erasure_leases.c.batch_id == batch_id)
            .values(renewed_at=now, expires_at=now + dt.timedelta(seconds=LEASE_S))
        )


def mark(engine: Engine, batch_id: int, status: str, reason: str | None = None) -> None:
    """Set a batch's status, and its requests' (``open`` keeps them pending with the reason)."""
    with engine.begin() as conn:
        values: dict[str, Any] = {"status": status}
        if status in ("closed", "open"):
            values["finished_at"] = utcnow()
        conn.execute(update(erasure_batches).where(erasure_batches.c.id == batch_id).values(**values))
        ids = conn.execute(select(erasure_batches.c.requests).where(erasure_batches.c.id == batch_id)).scalar_one()
        if status in ("closed", "open"):  # the batch has no owner until it is claimed again
            conn.execute(delete(erasure_leases).where(erasure_leases.c.batch_id == batch_id))
        if status == "open":
            conn.execute(
                update(erasure_requests)
                .where(erasure_requests.c.request_id.in_(ids))
                .values(status="open", reason=reason)
            )
        elif reason is not None:
            conn.execute(update(erasure_requests).where(erasure_requests.c.request_id.in_(ids)).values(reason=reason))


@dataclass(frozen=True)
class WorkingColumns:
    """What :func:`seal` took out of a batch and its requests, for :func:`unseal` to put back."""

    batch_id: int
    requests: dict[str, tuple[list[str], list[str]]]  # request id → (subject ids, pseudonyms)
    targets: Any  # the batch's ``targets`` step (None when it had none)


def seal(engine: Engine, batch_id: int, sealed: Mapping[str, list[dict[str, Any]]]) -> WorkingColumns:
    """Empty the working columns of a batch's requests and drop its ``targets`` step (one transaction).

    Each request keeps the receipt references ``sealed`` gives it (request id → ``[{"ref", "found"}, …]``), which
    the batch records as its ``sealed`` step: all a receipt says of each subject.

    Returns:
        What was taken out, for :func:`unseal`.
    """
    with engine.begin() as conn:
        write_lock(conn, f"erasure/batch/{batch_id}")
        rows = conn.execute(
            select(erasure_requests.c.request_id, erasure_requests.c.subjects, erasure_requests.c.pseudonyms).where(
                erasure_requests.c.request_id.in_(list(sealed))
            )
        ).all()
        working = {rid: (list(subjects), list(pseudonyms)) for rid, subjects, pseudonyms in rows}
        for rid, refs in sealed.items():
            conn.execute(
                update(erasure_requests)
                .where(erasure_requests.c.request_id == rid)
                .values(subjects=[], pseudonyms=[s["ref"] for s in refs])
            )
        steps = dict(conn.execute(select(erasure_batches.c.steps).where(erasure_batches.c.id == batch_id)).scalar_one())
        saved = steps.pop("targets", None)
        steps["sealed"] = dict(sealed)
        conn.execute(update(erasure_batches).where(erasure_batches.c.id == batch_id).values(steps=steps))
    return WorkingColumns(batch_id, working, saved)


def unseal(engine: Engine, working: WorkingColumns) -> None:
    """Put back what :func:`seal` took out (a scan found the subjects still there: the batch is tried again)."""
    with engine.begin() as conn:
        write_lock(conn, f"erasure/batch/{working.batch_id}")
        for rid, (subjects, pseudonyms) in working.requests.items():
            conn.execute(
                update(erasure_requests)
                .where(erasure_requests.c.request_id == rid)
                .values(subjects=subjects, pseudonyms=pseudonyms)
            )
        query = select(erasure_batches.c.steps).where(erasure_batches.c.id == working.batch_id)
        steps = dict(conn.execute(query).scalar_one())
        steps.pop("sealed", None)
        if working.targets is not None:
            steps["targets"] = working.targets
        conn.execute(update(erasure_batches).where(erasure_batches.c.id == working.batch_id).values(steps=steps))


def close_batch(engine: Engine, batch_id: int, receipts: Mapping[str, str], pepper: bytes) -> None:
    """Close a batch and its requests: the subject ids and the working steps go, the receipt hashes stay.

    Args:
        engine: the platform DB.
        batch_id: the batch.
        receipts: request id → the sha256 of its receipt.
        pepper: the platform's pepper (a request not sealed yet keeps its subjects' receipt references).
    """
    with engine.begin() as conn:
        for rid, sha in receipts.items():
            row = conn.execute(
                select(erasure_requests.c.subjects, erasure_requests.c.pseudonyms).where(
                    erasure_requests.c.request_id == rid
                )
            ).first()
            subjects, pseudonyms = (row[0], row[1]) if row else ([], None)
            refs = [receipt_ref(s, pepper) for s in subjects or []] or pseudonyms
            conn.execute(
                update(erasure_requests)
                .where(erasure_requests.c.request_id == rid)
                .values(
                    status="closed", closed_at=utcnow(), receipt_sha256=sha, subjects=[], pseudonyms=refs, reason=None
                )
            )
        steps = dict(conn.execute(select(erasure_batches.c.steps).where(erasure_batches.c.id == batch_id)).scalar_one())
        steps.pop("targets", None)
        steps.pop("sealed", None)
        conn.execute(
            update(erasure_batches)
            .where(erasure_batches.c.id == batch_id)
            .values(status="closed", finished_at=utcnow(), steps=steps)
        )
        conn.execute(delete(erasure_leases).where(erasure_leases.c.batch_id == batch_id))  # nobody owns it now


def overdue(engine: Engine, spec: str, sla_hours: float, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Requests of ``spec`` still not closed after ``sla_hours`` that have not been paged about yet."""
    now = now or utcnow()
    limit = now - dt.timedelta(hours=sla_hours)
    return [
        r
        for r in pending(engine, spec) + _processing(engine, spec)
        if _aware(r["received_at"]) < limit and r["sla_paged_at"] is None
    ]


def _processing(engine: Engine, spec: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(erasure_requests).where(erasure_requests.c.spec == spec, erasure_requests.c.status == "processing")
        ).mappings()
        return [dict(r) for r in rows]


def mark_paged(engine: Engine, request_ids: list[str]) -> None:
    """Remember that on-call was told these requests passed their SLA (told once)."""
    with engine.begin() as conn:
        conn.execute(
            update(erasure_requests).where(erasure_requests.c.request_id.in_(request_ids)).values(sla_paged_at=utcnow())
        )
