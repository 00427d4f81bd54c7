"""Subject ids that reached Airflow's metadata DB: filed into the platform DB, then redacted where Airflow keeps them.

Requests enter through op-only routes that keep subject ids in the platform DB (``ativo erasure request``, the page's
``POST /ativo/erasure/requests``, the queue), and the ERASURE DAG is triggered with the request id alone. Three
things still put ids into Airflow's metadata DB: an old client that triggers the DAG with ``{"subjects": [...]}``
(``dag_run.conf``, and the ``log`` row the REST API writes for the call, with the body in ``extra``, which
``GET /api/v2/eventLogs`` shows), and a queue message (its body, with the subject ids and the op key, in
``asset_event.extra``). Airflow's REST API can delete a run but not change a conf, an event-log row or an asset
event, and a task may not open the metadata DB in Airflow 3; so the redaction runs where a component that may touch
that DB runs:

- **The scheduler** (the real deployment): :class:`ErasureRedactor` is a listener of Ativo's plugin
  (:mod:`ativo.airflow.plugin`). ``on_dag_run_running`` fires in the scheduler when it starts a run of an erasure DAG,
  before any task: a conf that names subjects is filed into the platform DB and left ``{"request_id", ...}``, and
  the event-log rows are redacted, in the scheduler's own transaction. ``on_dag_run_success``/``on_dag_run_failed``
  (the scheduler's ``DagRun.update_state``) sweep every erasure run (paged, not only the newest), every event-log row
  of an erasure DAG and every queue asset event whose consuming runs have all finished.
- **``dag.test()`` / ``airflow dags test``** (tests, a developer): the scheduler does not start the run, so
  ``on_dag_run_running`` never fires; tasks run in the process that holds the DB, so ``receive`` (after filing)
  and ``verify`` (before its scan) call :func:`redact_in_process` (a task under a real worker's supervisor gets
  ``None`` at once: the ORM is blocked there, and the scheduler has already done it). ``dag.test()`` keeps a
  detached copy of its run and merges it back at each ``update_state``, which writes the old conf back after every
  task: hence the second sweep before the scan, and the listener also redacts that copy at the run's end
  (``update_state`` fires the end-of-run hooks under ``dag.test()`` too).

A conf is redacted only once its request is in the platform DB (a request the platform cannot record stays where it
is, and the next sweep tries again); an invalid one is audited by ``file_request``, then redacted (it can never be
processed). A queue message is redacted once it is filed, or once the run that consumed it finished (its ``receive``
task filed or refused it and deleted it from the queue, or the queue redelivers it as a new event). Under the
scheduler no component that may touch the DB runs between ``receive`` and ``verify`` (task listeners run on the
worker): a queue message consumed by the very run that processes its batch is still in its asset event when that
run's ``verify`` scans, so the batch stays open, the run's end redacts it, and the next run closes the batch. The
coalescing window normally makes a later run process it.

On SQLite (Airflow runs it in WAL mode) every redaction runs with ``secure_delete`` on, and once it is committed the
WAL is checkpointed into the file and truncated, so no page image from before stays in either; a reader of an older
snapshot can hold the checkpoint back (the verification scan then keeps the batch open, and the next sweep finishes
it). On PostgreSQL the old row versions are dead tuples that only autovacuum reclaims: not readable through SQL,
which is how the scan reads that DB.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

from airflow.listeners import hookimpl

from ativo.naming import ERASURE_SUFFIX

log = logging.getLogger("ativo.erasure")

QUEUE_ASSET_URI = "x-ativo://erasure-requests/"
PAGE = 500
TERMINAL = ("success", "failed")


def is_erasure_dag(dag_id: str | None) -> bool:
    """Whether ``dag_id`` is an ERASURE DAG (``<spec>__erasure``)."""
    return bool(dag_id) and str(dag_id).endswith(ERASURE_SUFFIX)


def scrub(value: Any) -> tuple[Any, int]:
    """``value`` with every ``"subjects"`` list replaced by its length (``"subjects_redacted"``); (value, n found)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        n = 0
        for k, v in value.items():
            if k == "subjects" and v:
                out["subjects_redacted"] = len(v) if isinstance(v, list | tuple) else 1
                n += 1
                continue
            out[k], m = scrub(v)
            n += m
        return out, n
    if isinstance(value, list):
        items = [scrub(v) for v in value]
        return [v for v, _ in items], sum(m for _, m in items)
    return value, 0


def file_conf(dag_id: str, run_id: str, conf: dict[str, Any], actor: str | None) -> bool:
    """File an old client's conf into the platform DB as the ``receive`` task would; whether it may be redacted.

    True when the request is recorded (now or before) or can never be (invalid: audited by ``file_request``); False
    when the platform DB could not be written (the conf stays, the next sweep tries again).
    """
    from ativo.config import load_settings
    from ativo.erasure.requests import InvalidRequest, file_request, request_id_for
    from ativo.hashing import platform_pepper
    from ativo.spec import get_spec
    from ativo.store.db import get_engine

    spec = dag_id.removesuffix(ERASURE_SUFFIX)
    try:
        settings = load_settings()
        engine = get_engine(settings.db_url)
        try:
            file_request(
                engine,
                spec=spec,
                subjects=conf.get("subjects") or [],
                pepper=platform_pepper(settings),
                actor=actor or "airflow",
                channel="rest",
                min_subject_length=get_spec(spec, settings.specs_dir).erasure.min_subject_id_length,
                request_id=conf.get("request_id") or request_id_for(run_id),
            )
        except InvalidRequest:  # file_request audited it (pseudonyms only); it can never be processed
            pass
        return True
    except Exception:
        log.exception(
            "could not file the conf of %s %s into the platform DB: it is kept until the next sweep", dag_id, run_id
        )
        return False


def _secure_delete(session: Any) -> None:
    from sqlalchemy import event, text

    if session.get_bind().dialect.name != "sqlite":
        return
    session.execute(text("PRAGMA secure_delete=ON"))
    if not session.info.get("ativo_checkpoint"):  # once the redaction is committed, no old page image may stay
        session.info["ativo_checkpoint"] = True

        def after_commit(committed: Any) -> None:
            committed.info.pop("ativo_checkpoint", None)
            checkpoint(committed.get_bind())

        event.listen(session, "after_commit", after_commit, once=True)


def checkpoint(bind: Any) -> bool:
    """Checkpoint Airflow's SQLite DB (WAL mode) into its file and truncate the WAL; whether it completed.

    The page images from before a redaction are then gone from both files. A reader of an older snapshot can hold it
    back; the next sweep's checkpoint finishes it.
    """
    from sqlalchemy import text

    engine = getattr(bind, "engine", bind)
    if engine.dialect.name != "sqlite":
        return True
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            busy = conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)")).first()
        if busy and busy[0]:
            log.info("Airflow's SQLite WAL is held by a reader: the next sweep checkpoints it (%s)", tuple(busy))
        return not (busy and busy[0])
    except Exception as err:
        log.warning("could not checkpoint Airflow's SQLite metadata DB: %s", err)
        return False


def redacted_conf(run: Any) -> dict[str, Any] | None:
    """The conf ``run`` keeps once its subjects are filed into the platform DB.

    None when it names none, or they could not be filed (then it is kept, and the next sweep tries again).
    """
    from ativo.erasure.requests import request_id_for

    conf = run.conf or {}
    if not isinstance(conf, dict) or not conf.get("subjects") or not is_erasure_dag(run.dag_id):
        return None
    if not file_conf(run.dag_id, run.run_id, conf, getattr(run, "triggering_user_name", None)):
        return None
    new, _ = scrub(conf)
    return {**new, "request_id": conf.get("request_id") or request_id_for(run.run_id)}


def redact_run(session: Any, run: Any) -> bool:
    """File and redact one run's conf (an ORM ``DagRun`` of ``session``); whether it changed."""
    new = redacted_conf(run)
    if new is None:
        return False
    _secure_delete(session)
    run.conf = new
    return True


def _pages(session: Any, query: Any, id_col: Any) -> Iterator[list[Any]]:
    last = 0
    while True:
        rows = list(session.scalars(query.where(id_col > last).order_by(id_col).limit(PAGE)))
        if not rows:
            return
        yield rows
        last = rows[-1].id


def redact_runs(session: Any) -> int:
    """Every erasure run whose conf names subjects, all of them (paged by id): filed, then redacted."""
    from airflow.models.dagrun import DagRun
    from sqlalchemy import Text, cast, select

    query = select(DagRun).where(DagRun.dag_id.like(f"%{ERASURE_SUFFIX}"), cast(DagRun.conf, Text).like('%"subjects"%'))
    n = 0
    for rows in _pages(session, query, DagRun.id):
        n += sum(redact_run(session, run) for run in rows)
    return n


def redact_event_log(session: Any) -> int:
    """Every event-log row of an erasure DAG whose ``extra`` names subjects (the REST trigger's body)."""
    from airflow.models.log import Log
    from sqlalchemy import select

    query = select(Log).where(Log.dag_id.like(f"%{ERASURE_SUFFIX}"), Log.extra.like('%"subjects"%'))
    n = 0
    for rows in _pages(session, query, Log.id):
        for row in rows:
            try:
                extra = json.loads(row.extra)
            except ValueError:
                extra = None
            _secure_delete(session)
            if isinstance(extra, dict | list):
                new, found = scrub(extra)
                if not found:
                    continue
                row.extra = json.dumps(new)
            else:  # not JSON: nothing in it can be kept apart from the ids
                row.extra = json.dumps({"redacted": "erasure request"})
            n += 1
    return n


def _redact_message(msg: Any) -> Any:
    if not isinstance(msg, dict):
        return msg
    try:
        body = json.loads(msg.get("Body") or "")
    except (TypeError, ValueError):
        body = None
    kept = {k: body[k] for k in ("spec", "request_id") if isinstance(body, dict) and k in body}
    return {
        "MessageId": msg.get("MessageId"),
        "Body": json.dumps({**kept, "redacted": "filed; subjects and key removed"}),
    }


def _all_filed(messages: list[Any]) -> bool:
    """Whether every message's request is in the platform DB already (filed by the run that consumed it)."""
    from ativo.config import load_settings
    from ativo.erasure import requests as rq
    from ativo.store.db import get_engine

    engine = get_engine(load_settings().db_url)
    for msg in messages:
        try:
            body = json.loads(msg.get("Body") or "")
            rid = body.get("request_id") or rq.request_id_for(f"sqs:{msg.get('MessageId')}")
        except (AttributeError, TypeError, ValueError):
            return False
        if not isinstance(rid, str) or rq.get(engine, rid) is None:
            return False
    return True


def redact_queue_events(session: Any) -> int:
    """Every queue asset event whose message bodies (subject ids, op key) may go: removed.

    They may once every message is filed in the platform DB, or once the runs that consumed the event have finished
    (what they did not file, they refused, or the queue redelivers as a new event).
    """
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.models.dagrun import DagRun
    from sqlalchemy import Text, cast, select

    query = (
        select(AssetEvent)
        .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
        .where(AssetModel.uri.like(f"{QUEUE_ASSET_URI}%"), cast(AssetEvent.extra, Text).like('%"Body"%'))
    )
    n = 0
    for rows in _pages(session, query, AssetEvent.id):
        for event in rows:
            payload = (event.extra or {}).get("payload")
            if not isinstance(payload, dict) or not isinstance(payload.get("message_batch"), list):
                continue
            runs: list[DagRun] = list(event.created_dagruns)
            finished = bool(runs) and all(str(r.state) in TERMINAL for r in runs)
            if not finished and not _all_filed(payload["message_batch"]):
                continue  # not yet filed: the run that files it has not got there
            batch = [_redact_message(m) for m in payload["message_batch"]]
            if batch == payload["message_batch"]:
                continue  # redacted before
            _secure_delete(session)
            event.extra = {**event.extra, "payload": {**payload, "message_batch": batch}}
            n += 1
    return n


def sweep(session: Any) -> dict[str, int]:
    """Every place of Airflow's metadata DB where erasure requests leave subject ids, redacted (idempotent)."""
    done = {
        "runs": redact_runs(session),
        "event_log": redact_event_log(session),
        "queue_events": redact_queue_events(session),
    }
    session.flush()
    if any(done.values()):
        log.info("redacted subject ids in Airflow's metadata DB: %s", done)
    return done


def redact_in_process() -> dict[str, int] | None:
    """:func:`sweep` from inside a task, where the process may open the metadata DB; None where it may not.

    Only ``dag.test()`` / ``airflow dags test`` run tasks in such a process; under a worker's supervisor the ORM is
    blocked (and the scheduler's listener did it before the first task).
    """
    try:
        from airflow import settings
        from airflow.utils.session import create_session

        if settings.Session is None or type(settings.Session).__name__ == "BlockedDBSession":
            return None
        with create_session(scoped=False) as session:  # not the scoped session dag.test() itself holds
            return sweep(session)
    except Exception as err:  # blocked, or no DB here: the scheduler's listener does it
        log.info("Airflow's metadata DB is not reachable from this task (%s): the scheduler redacts it", err)
        return None


class ErasureRedactor:
    """Listener (Ativo's plugin): redacts at the start of an erasure run and sweeps at its end (see the module)."""

    @hookimpl
    def on_dag_run_running(self, dag_run: Any, msg: str) -> None:
        """The scheduler starts an erasure run: file and redact its conf, and the event log, before any task."""
        if not is_erasure_dag(dag_run.dag_id):
            return
        self._run(dag_run, full=False)

    @hookimpl
    def on_dag_run_success(self, dag_run: Any, msg: str) -> None:
        """An erasure run ended: sweep every run, the event log and the consumed queue events."""
        if is_erasure_dag(dag_run.dag_id):
            self._run(dag_run, full=True)

    @hookimpl
    def on_dag_run_failed(self, dag_run: Any, msg: str) -> None:
        """An erasure run ended (failed): the same sweep."""
        if is_erasure_dag(dag_run.dag_id):
            self._run(dag_run, full=True)

    @staticmethod
    def _run(dag_run: Any, *, full: bool) -> None:
        from sqlalchemy.orm import object_session

        session = object_session(dag_run)
        try:
            if session is None:  # dag.test()'s run object is detached: a session of our own
                from airflow.utils.session import create_session

                new = redacted_conf(dag_run)
                if new is not None:  # update_state merges this object back into its session after the listeners
                    dag_run.conf = new
                with create_session(scoped=False) as own:
                    sweep(own)
                return
            redact_run(session, dag_run)
            if full:
                sweep(session)
            else:
                redact_event_log(session)
                session.flush()
        except Exception:  # never break the scheduler's loop; the next run's end sweeps again
            log.exception("could not redact subject ids in Airflow's metadata DB (run %s)", dag_run.run_id)


redactor = ErasureRedactor()
