"""Erasure requests: recorded and acknowledged before anything is processed, coalesced into batches.

A request names a spec and subject ids. :func:`file_request` writes it to the platform DB and returns its id; only
then does anything else happen (a queue or a triggerer that is down loses nothing: the DB is the record). Whether a
subject is in the data is never said at filing time: an unknown subject is acknowledged like any other and
reported "not found" in the receipt. Only the ``op`` role may file one; a refused attempt is audited.

Requests filed within the spec's ``erasure.window_minutes`` of the oldest pending one are handled as one batch.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, insert, select, update

from ativo.erasure import audit
from ativo.errors import AtivoError
from ativo.store.db import erasure_batches, erasure_requests, utcnow, write_lock

REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
MAX_SUBJECTS = 100_000
PENDING = ("received", "open")


class ErasureRefused(AtivoError):
    """The caller may not file erasure requests (HTTP 403 on every path); the attempt is audited."""


class InvalidRequest(AtivoError):
    """A request that names no subject, a malformed id, or an id already used for other subjects."""


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


def _clean_subjects(subjects: Iterable[Any]) -> list[str]:
    out: list[str] = []
    for i, s in enumerate(subjects):
        if not isinstance(s, str) or not s.strip():
            raise InvalidRequest(f"field 'subjects[{i}]': must be a non-empty string (got {type(s).__name__})")
        if len(s) > 128:
            raise InvalidRequest(f"field 'subjects[{i}]': longer than 128 characters")
        out.append(s.strip())
    if not out:
        raise InvalidRequest("field 'subjects': names no subject (give at least one subject id)")
    if len(out) > MAX_SUBJECTS:
        raise InvalidRequest(f"field 'subjects': {len(out)} subjects, at most {MAX_SUBJECTS} per request")
    return sorted(set(out))


def refuse(engine: Engine, *, spec: str, actor: str, channel: str, why: str) -> ErasureRefused:
    """Audit a refused attempt and return the error to raise (callers answer 403)."""
    audit.append(engine, "erasure_refused", actor or "anonymous", spec, {"channel": channel, "why": why})
    return ErasureRefused(f"erasure requests need the 'op' role: {why} (the attempt is recorded in the audit log)")


def file_request(engine: Engine, *, spec: str, subjects: Iterable[Any], pepper: bytes, actor: str, channel: str,
                 request_id: str | None = None) -> Ack:  # fmt: skip
    """Record a request (one transaction) and acknowledge it.

    The same id filed again with the same subjects is acknowledged again (a retried call, a redelivered message);
    with other subjects it is refused.

    Raises:
        InvalidRequest: no subjects, a malformed subject or request id, or an id reused for other subjects.
    """
    from ativo.serve.predlog import pseudonymise

    ids = _clean_subjects(subjects)
    rid = request_id or new_request_id()
    if not REQUEST_ID.fullmatch(rid):
        raise InvalidRequest(f"field 'request_id': {rid[:40]!r} must be 1-128 letters, digits or . _ : -")
    pseudonyms = [pseudonymise(s, pepper) for s in ids]
    with engine.begin() as conn:
        write_lock(conn, f"erasure/{spec}")
        row = conn.execute(select(erasure_requests).where(erasure_requests.c.request_id == rid)).mappings().first()
        if row is not None:
            if row["status"] == "closed":  # its pseudonyms became receipt references when it closed
                pseudonyms = [receipt_ref(s, pepper) for s in ids]
            if row["spec"] != spec or sorted(row["pseudonyms"]) != sorted(pseudonyms):
                raise InvalidRequest(f"field 'request_id': {rid!r} was already filed for other subjects or another "
                                     "spec; use a new id")  # fmt: skip
            return Ack(rid, spec, len(ids), row["status"], _aware(row["received_at"]).isoformat(), duplicate=True)
        now = utcnow()
        conn.execute(insert(erasure_requests).values(
            request_id=rid, spec=spec, subjects=ids, pseudonyms=pseudonyms, actor=actor, channel=channel,
            status="received", received_at=now))  # fmt: skip
    return Ack(rid, spec, len(ids), "received", now.isoformat())


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


def pending(engine: Engine, spec: str) -> list[dict[str, Any]]:
    """Requests of ``spec`` not yet in a batch that finished, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(select(erasure_requests).where(erasure_requests.c.spec == spec,
                                                           erasure_requests.c.status.in_(PENDING))
                            .order_by(erasure_requests.c.received_at)).mappings()  # fmt: skip
        return [dict(r) for r in rows]


@dataclass(frozen=True)
class Claimed:
    """The batch a run works on, or why there is none yet."""

    batch_id: int | None
    requests: list[str]
    wait_s: float = 0.0
    resumed: bool = False
    reason: str = ""


def claim_batch(engine: Engine, spec: str, window_minutes: float, run_id: str, *,
                now: dt.datetime | None = None) -> Claimed:  # fmt: skip
    """The batch this run processes: an unfinished one (resumed), else every pending request, else none.

    Pending requests form a batch once the oldest has waited ``window_minutes``; before, the answer says how long.
    """
    now = now or utcnow()
    with engine.begin() as conn:
        write_lock(conn, f"erasure/{spec}")
        open_batch = conn.execute(select(erasure_batches).where(erasure_batches.c.spec == spec,
                                                                erasure_batches.c.status.in_(("running", "open")))
                                  .order_by(erasure_batches.c.id).limit(1)).mappings().first()  # fmt: skip
        if open_batch is not None:
            steps = dict(open_batch["steps"])
            if open_batch["status"] == "open":  # kept open by a failure: what failed is tried again
                steps = {k: v for k, v in steps.items() if not (
                    (k.startswith("retrain/") and not (v or {}).get("ok"))
                    or (k.startswith("gates/") and not (v or {}).get("passed"))
                    or k in ("switch", "verify"))}  # fmt: skip
            conn.execute(update(erasure_batches).where(erasure_batches.c.id == open_batch["id"])
                         .values(dag_run_id=run_id, status="running", steps=steps))  # fmt: skip
            return Claimed(open_batch["id"], list(open_batch["requests"]), resumed=True,
                           reason=f"resumed batch {open_batch['id']} (it did not finish)")  # fmt: skip
        rows = conn.execute(select(erasure_requests.c.request_id, erasure_requests.c.received_at)
                            .where(erasure_requests.c.spec == spec, erasure_requests.c.status.in_(PENDING))
                            .order_by(erasure_requests.c.received_at)).all()  # fmt: skip
        if not rows:
            return Claimed(None, [], reason=f"no pending erasure request for {spec}")
        oldest = _aware(rows[0][1])
        due = oldest + dt.timedelta(minutes=window_minutes)
        if due > now:
            return Claimed(None, [], wait_s=(due - now).total_seconds(),
                           reason=f"{len(rows)} request(s) wait for the coalescing window to end at "
                                  f"{due.isoformat(timespec='seconds')}")  # fmt: skip
        ids = [r[0] for r in rows]
        batch_id = conn.execute(insert(erasure_batches).values(
            spec=spec, requests=ids, status="running", steps={}, dag_run_id=run_id, created_at=now,
        )).inserted_primary_key[0]  # type: ignore[index]  # fmt: skip
        conn.execute(update(erasure_requests).where(erasure_requests.c.request_id.in_(ids))
                     .values(status="processing", batch_id=batch_id, reason=None))  # fmt: skip
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
        rows = conn.execute(select(erasure_requests).where(erasure_requests.c.request_id.in_(ids))
                            .order_by(erasure_requests.c.received_at)).mappings()  # fmt: skip
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


def mark(engine: Engine, batch_id: int, status: str, reason: str | None = None) -> None:
    """Set a batch's status, and its requests' (``open`` keeps them pending with the reason)."""
    with engine.begin() as conn:
        values: dict[str, Any] = {"status": status}
        if status in ("closed", "open"):
            values["finished_at"] = utcnow()
        conn.execute(update(erasure_batches).where(erasure_batches.c.id == batch_id).values(**values))
        ids = conn.execute(select(erasure_batches.c.requests).where(erasure_batches.c.id == batch_id)).scalar_one()
        if status == "open":
            conn.execute(update(erasure_requests).where(erasure_requests.c.request_id.in_(ids))
                         .values(status="open", reason=reason))  # fmt: skip
        elif reason is not None:
            conn.execute(update(erasure_requests).where(erasure_requests.c.request_id.in_(ids)).values(reason=reason))


def overdue(engine: Engine, spec: str, sla_hours: float, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Requests of ``spec`` still not closed after ``sla_hours`` that have not been paged about yet."""
    now = now or utcnow()
    limit = now - dt.timedelta(hours=sla_hours)
    return [r for r in pending(engine, spec) + _processing(engine, spec)
            if _aware(r["received_at"]) < limit and r["sla_paged_at"] is None]  # fmt: skip


def _processing(engine: Engine, spec: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(erasure_requests).where(erasure_requests.c.spec == spec,
                                                           erasure_requests.c.status == "processing")).mappings()
        return [dict(r) for r in rows]


def mark_paged(engine: Engine, request_ids: list[str]) -> None:
    """Remember that on-call was told these requests passed their SLA (told once)."""
    with engine.begin() as conn:
        conn.execute(update(erasure_requests).where(erasure_requests.c.request_id.in_(request_ids))
                     .values(sla_paged_at=utcnow()))  # fmt: skip
