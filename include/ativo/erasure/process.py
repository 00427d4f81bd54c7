"""One erasure batch, as the steps the ERASURE DAG wires together (or :func:`process` runs in one process).

collect → purge (lake, new dataset version, redaction of every historical version, landing, quarantine, logs,
caches, text; then the old DVC objects are deleted) → models (lineage) → retrain × live version → gates × retrained
version → switch (blue/green) and retire → verify (scan) → receipts and close.

Every step checkpoints its result on the batch, so a run that was killed resumes at the step that did not finish;
each step is idempotent on its own as well. Step results hold counts and places, never subject or record ids (the
batch's working ``targets`` are dropped when it closes). One batch has one owner at a time (the spec's lease, taken
when the batch is claimed: :func:`ativo.erasure.requests.claim_batch`): :func:`process` beside a DAG run waits for it
or refuses.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ativo import audit
from ativo.erasure import requests as rq
from ativo.erasure.purge import Targets
from ativo.erasure.requests import receipt_ref
from ativo.store import prefixes
from ativo.store.db import get_engine, utcnow

if TYPE_CHECKING:
    from ativo.config import Settings
    from ativo.spec import ModelSpec

log = logging.getLogger(__name__)


def _now() -> str:
    return utcnow().isoformat(timespec="milliseconds")


def _timed(engine: Any, batch_id: int, step: str, fn: Any) -> Any:
    done = rq.step_result(engine, batch_id, step)
    if done is not None:
        log.info("erasure batch %s: step %s already done (resumed run)", batch_id, step)
        return done
    t0 = time.perf_counter()
    result = fn()
    result = {**result, "at": _now(), "seconds": round(time.perf_counter() - t0, 3)}
    rq.record_step(engine, batch_id, step, result)
    return result


def targets_of(settings: Settings, batch_id: int) -> Targets:
    """The batch's working targets (subjects, pseudonyms, and the record and prediction ids found so far)."""
    from ativo.hashing import platform_pepper, pseudonymise

    engine = get_engine(settings.db_url)
    saved = rq.step_result(engine, batch_id, "targets")
    if saved:
        return Targets.from_dict(saved)
    subjects = rq.subjects_of(engine, batch_id)
    pepper = platform_pepper(settings)
    return Targets(subjects, [pseudonymise(s, pepper) for s in subjects])


def purge(spec: ModelSpec, settings: Settings, batch_id: int) -> dict[str, Any]:
    """Purge every store of the batch's subjects and make the new dataset version (checkpointed).

    :func:`ativo.erasure.purge.find` first (its own step), then :func:`ativo.erasure.purge.purge`.
    """
    from ativo.erasure import purge as p

    engine = get_engine(settings.db_url)

    found = _timed(engine, batch_id, "find", lambda: _find(spec, settings, batch_id))

    def run() -> dict[str, Any]:
        targets = targets_of(settings, batch_id)  # as the last checkpoint saved them: complete on a resumed run

        def checkpoint(name: str, fn: Callable[[], Any]) -> Any:  # each store's part once, what it did kept
            done = rq.step_result(engine, batch_id, f"purge/{name}")
            if done is not None:
                return done["result"]
            result = fn()
            rq.record_step(engine, batch_id, "targets", targets.to_dict())  # the ids it found, for the next parts
            rq.record_step(engine, batch_id, f"purge/{name}", {"result": result})
            return result

        return p.purge(spec, settings, targets, batch_id=batch_id, found=found, checkpoint=checkpoint)

    return _timed(engine, batch_id, "purge", run)


def _find(spec: ModelSpec, settings: Settings, batch_id: int) -> dict[str, Any]:
    from ativo.erasure.purge import find

    targets = targets_of(settings, batch_id)
    counts = find(spec, settings, targets)
    rq.record_step(get_engine(settings.db_url), batch_id, "targets", targets.to_dict())
    return counts


def plan_models(spec: ModelSpec, settings: Settings, batch_id: int) -> dict[str, Any]:
    """Which registered versions the purge touched, and which of them are live (to retrain)."""
    from ativo.erasure.models import LIVE, affected_versions

    engine = get_engine(settings.db_url)

    def run() -> dict[str, Any]:
        tags = rq.step_result(engine, batch_id, "purge")["redacted_versions"]
        found = affected_versions(spec, settings, tags)
        live = [v for v in found if set(v["aliases"]) & set(LIVE)]
        return {
            "affected": [v["version"] for v in found],
            "live": [
                {"version": v["version"], "aliases": v["aliases"], "dataset_version": v["dataset_version"]}
                for v in live
            ],
        }

    return _timed(engine, batch_id, "models", run)


def retrain(
    spec: ModelSpec,
    settings: Settings,
    batch_id: int,
    version: str,
    run_meta: dict[str, Any],
    threads: int | None = None,
) -> dict[str, Any]:
    """Retrain one live version (checkpointed per version); a failure is recorded as the step's result."""
    from ativo.erasure.models import RetrainFailed
    from ativo.erasure.models import retrain as train

    engine = get_engine(settings.db_url)
    requests = rq.batch(engine, batch_id)["requests"]

    def run() -> dict[str, Any]:
        try:
            return {
                "ok": True,
                **train(
                    spec, settings, version, batch_id=batch_id, requests=requests, run_meta=run_meta, threads=threads
                ),
            }
        except RetrainFailed as err:
            return {"ok": False, "from": version, "reason": str(err)}

    return _timed(engine, batch_id, f"retrain/{version}", run)


def gates(spec: ModelSpec, settings: Settings, batch_id: int, version: str) -> dict[str, Any]:
    """Every gate on one retrained version (checkpointed per version)."""
    from ativo.erasure.models import run_gates

    engine = get_engine(settings.db_url)
    return _timed(engine, batch_id, f"gates/{version}", lambda: run_gates(spec, settings, version))


def switch(spec: ModelSpec, settings: Settings, batch_id: int) -> dict[str, Any]:
    """Switch every live alias whose version was retrained and passed to the new version; retire the rest.

    A live version whose retraining failed or was rejected stays where it is, and the batch stays open with the
    reason (on-call is paged by the caller); the data purge is complete either way.
    """
    from ativo.erasure.models import retire
    from ativo.erasure.models import switch as move

    engine = get_engine(settings.db_url)

    def run() -> dict[str, Any]:
        b = rq.batch(engine, batch_id)
        steps, requests = b["steps"], b["requests"]
        missing = [s for s in ("purge", "models") if s not in steps]
        if missing:
            raise RuntimeError(
                f"erasure batch {batch_id}: step(s) {', '.join(missing)} did not finish; nothing is "
                "switched (run the batch again)"
            )
        replaced: dict[str, str] = {}
        failures: list[str] = []
        for live in steps["models"]["live"]:
            old = live["version"]
            trained = steps.get(f"retrain/{old}")
            if not trained or not trained.get("ok"):
                failures.append(
                    f"version {old} ({', '.join(live['aliases'])}): retraining failed: "
                    f"{(trained or {}).get('reason', 'it did not run')}"
                )
                continue
            judged = steps.get(f"gates/{trained['version']}")
            if not judged or not judged.get("passed"):
                why = "; ".join(f"{g}: {r}" for g, r in ((judged or {}).get("reasons") or {}).items())
                failures.append(
                    f"version {old} ({', '.join(live['aliases'])}): retrained version "
                    f"{trained['version']} failed its gates ({why or 'they did not run'})"
                )
                continue
            replaced[old] = trained["version"]
        record = move(spec, settings, replaced, batch_id=batch_id, requests=requests) if replaced else None
        retired = retire(
            spec,
            settings,
            steps["models"]["affected"],
            requests=requests,
            dataset_tags=steps["purge"]["redacted_versions"],
            batch_id=batch_id,
        )
        return {
            "replaced": replaced,
            "failures": failures,
            "deployment": (record or {}).get("uri"),
            "aliases_after": (record or {}).get("aliases_after"),
            "retired": retired,
        }

    return _timed(engine, batch_id, "switch", run)


def verify(spec: ModelSpec, settings: Settings, batch_id: int) -> dict[str, Any]:
    """Scan every store; a hit in the logs (a server flushed late) is purged once more and scanned again."""
    from ativo.erasure import purge as p
    from ativo.erasure.scan import scan

    engine = get_engine(settings.db_url)
    sealed = rq.step_result(engine, batch_id, "verify") if rq.step_result(engine, batch_id, "sealed") else None
    if sealed:  # an earlier try emptied the working columns, then stopped: its scan stands (no id is left to scan for)
        return dict(sealed)
    targets = targets_of(settings, batch_id)
    # the working columns of every request not closed (this batch's, and any filed since for the same subjects)
    requests = rq.open_request_ids(engine)
    result = scan(settings, targets, exempt_requests=requests, exempt_batch=batch_id)
    if not result["clean"]:
        p.purge_again(spec, settings, targets)
        result = {**scan(settings, targets, exempt_requests=requests, exempt_batch=batch_id), "second_pass": True}
    result["at"] = _now()
    rq.record_step(engine, batch_id, "verify", result)
    return result


def close(spec: ModelSpec, settings: Settings, batch_id: int) -> dict[str, Any]:
    """Write a receipt per request (content-hashed, chained in the audit log) and close the batch, or keep it open.

    It stays open, with the reason, when the scan found something or a live model could not be replaced.

    Returns:
        ``{"closed": bool, "reason", "receipts": {request_id: sha256}}``.
    """
    from ativo.hashing import platform_pepper
    from ativo.store.objects import open_store

    engine = get_engine(settings.db_url)
    b = rq.batch(engine, batch_id)
    steps = b["steps"]
    problems = list(steps.get("switch", {}).get("failures", []))
    scan = steps.get("verify") or {}
    if not scan.get("clean"):
        problems.append(
            "the verification scan found the subjects in: "
            + "; ".join(f"{h['store']} {h['where']} ({', '.join(h['found'])})" for h in scan.get("hits", [])[:20])
        )
    if problems:
        reason = " | ".join(problems)[:4000]
        rq.mark(engine, batch_id, "open", reason)
        return {"closed": False, "reason": reason, "receipts": {}}
    pepper = platform_pepper(settings)
    targets = targets_of(settings, batch_id)
    store = open_store(settings)
    files = seal_and_scan_files(settings, batch_id, targets, pepper)
    if not files["clean"]:
        reason = "the byte scan of the platform DB's files found the subjects in: " + "; ".join(
            f"{h['where']} ({', '.join(h['found'])})" for h in files["hits"]
        )
        rq.mark(engine, batch_id, "open", reason)
        return {"closed": False, "reason": reason, "receipts": {}}
    sealed = rq.step_result(engine, batch_id, "sealed")
    out: dict[str, str] = {}
    previous = audit.entries(engine, kind="erasure_receipt")
    prev_sha = previous[-1]["payload"]["receipt_sha256"] if previous else audit.GENESIS
    purged = steps["purge"]
    for req in rq.batch_requests(engine, batch_id):
        done = [
            e
            for e in audit.entries(engine, kind="erasure_receipt", ref=req["request_id"])
            if e["payload"]["receipt"].get("batch") == batch_id
        ]
        if done:  # an earlier try wrote it, then died before closing: the same receipt stands
            out[req["request_id"]] = prev_sha = done[-1]["payload"]["receipt_sha256"]
            continue
        doc = {
            "request_id": req["request_id"],
            "spec": spec.name,
            "channel": req["channel"],
            "actor": req["actor"],
            "batch": batch_id,
            "requests_in_batch": len(b["requests"]),
            "subjects": sealed[req["request_id"]],
            "purged": {
                "lake_partitions": purged["lake_partitions"],
                "lake_rows": purged["lake_rows"],
                "dvc_objects_redacted": len(purged["redacted_objects"]),
                "dvc_objects_deleted": purged["dvc_objects_deleted"],
                "landing_quarantine": purged["landing_quarantine"],
                "prediction_log": purged["prediction_log"],
                "dataset_caches": purged["dataset_caches"],
                "text_files": purged["text_files"],
            },
            "dataset_versions": {
                "before": purged["dataset_before"],
                "after": purged["dataset_after"],
                "redacted": purged["redacted_versions"],
            },
            "models": {
                "affected": steps["models"]["affected"],
                "retrained": {
                    k.split("/", 1)[1]: {"to": v.get("version"), "redacted_dataset": v.get("redacted")}
                    for k, v in steps.items()
                    if k.startswith("retrain/")
                },
                "deployed": steps["switch"]["replaced"],
                "aliases_after": steps["switch"]["aliases_after"],
                "retired": steps["switch"]["retired"]["versions"],
                "artifacts_deleted_runs": len(steps["switch"]["retired"]["runs"]),
            },
            "timestamps": {
                "received": _iso(req["received_at"]),
                "batch_created": _iso(b["created_at"]),
                **{k: v["at"] for k, v in steps.items() if isinstance(v, dict) and "at" in v},
                "closed": _now(),
            },
            "scan": {
                "clean": scan["clean"] and files["clean"],
                "scanned": {**scan["scanned"], **files["scanned"]},
                "hits": scan["hits"] + files["hits"],
                "not_scanned": {**scan.get("not_scanned", {}), **files["not_scanned"]},
            },
            "previous_receipt_sha256": prev_sha,
        }
        sha = audit.content_hash(doc)
        doc["sha256"] = sha
        store.put_bytes(
            prefixes.erasure_receipt(spec.name, req["request_id"]), json.dumps(doc, indent=2, sort_keys=True).encode()
        )
        audit.append(engine, "erasure_receipt", "erasure", req["request_id"], {"receipt_sha256": sha, "receipt": doc})
        out[req["request_id"]] = sha
        prev_sha = sha
    rq.close_batch(engine, batch_id, out, pepper)
    return {"closed": True, "reason": None, "receipts": out}


def seal_and_scan_files(settings: Settings, batch_id: int, targets: Targets, pepper: bytes) -> dict[str, Any]:
    """Empty the batch's working columns, compact the platform DB, and byte-scan its files for the subjects.

    The request rows keep receipt references only (``sealed``: per request, each subject's reference and whether it
    was found, which is all a receipt says of it); the batch's targets go. Then :func:`ativo.store.db.compact` and
    :func:`ativo.erasure.scan.scan_db_files`, exempting what other open requests still hold on purpose. A hit puts
    the working columns back (the batch stays open and is tried again). A try that stopped after sealing has no id
    left to scan for: the files are listed as not scanned in its receipt.
    """
    from ativo.erasure.scan import scan_db_files
    from ativo.store.db import compact

    engine = get_engine(settings.db_url)
    if rq.step_result(engine, batch_id, "sealed") is not None:
        compact(engine)
        return {
            "clean": True,
            "hits": [],
            "scanned": {},
            "not_scanned": {
                "platform db files": "an earlier try emptied the working columns, then stopped: no id left to scan for "
                "(the files were compacted again)"
            },
        }
    requests = rq.batch_requests(engine, batch_id)
    sealed = {
        r["request_id"]: [{"ref": receipt_ref(s, pepper), "found": s in targets.found} for s in r["subjects"]]
        for r in requests
    }
    working = rq.seal(engine, batch_id, sealed)
    compacted = compact(engine)
    held: set[str] = set()  # other open requests' working columns (filed since, for the same subjects)
    for rid in rq.open_request_ids(engine):
        row = rq.get(engine, rid) or {}
        if row.get("batch_id") != batch_id:
            held.update(row.get("subjects") or [])
            held.update(row.get("pseudonyms") or [])
    files = scan_db_files(settings, targets, exempt=held)
    files["compacted"] = compacted
    if not files["clean"]:
        rq.unseal(engine, working)
    return files


def _iso(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return (value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value).isoformat(timespec="milliseconds")
    return str(value)


def verify_receipt(settings: Settings, request_id: str) -> dict[str, Any]:
    """Check a request's receipt: its content hash, its audit row, and the whole audit chain."""
    engine = get_engine(settings.db_url)
    rows = audit.entries(engine, kind="erasure_receipt", ref=request_id)
    if not rows:
        return {"ok": False, "problems": [f"request {request_id} has no receipt (it is not closed)"]}
    doc = dict(rows[-1]["payload"]["receipt"])
    sha = doc.pop("sha256")
    problems = []
    if audit.content_hash(doc) != sha or rows[-1]["payload"]["receipt_sha256"] != sha:
        problems.append("the receipt's content does not match its sha256")
    chain = audit.verify_chain(engine)
    problems.extend(chain["problems"])
    req = rq.get(engine, request_id)
    if req and req["receipt_sha256"] != sha:
        problems.append("the request names another receipt")
    return {"ok": not problems, "problems": problems, "sha256": sha, "chain_rows": chain["rows"]}


def process(
    spec: ModelSpec,
    settings: Settings,
    *,
    run_id: str = "manual",
    force: bool = True,
    run_meta: dict[str, Any] | None = None,
    wait_s: float = 0.0,
) -> dict[str, Any]:
    """Every step of the next batch in this process (the CLI's ``ativo erasure run``, benchmarks, notebooks).

    The batch is this process's alone while it runs (the spec's lease); another owner's batch (a DAG run) is waited
    for up to ``wait_s``, then refused.

    Args:
        spec: the spec.
        settings: where things are.
        run_id: recorded on the batch.
        force: do not wait for the coalescing window to end.
        run_meta: Airflow context for the retrained versions' tags.
        wait_s: how long to wait for another owner to finish.

    Raises:
        ErasureBusy: another owner still held the batch after ``wait_s`` (the message says who, and until when).
    """
    engine = get_engine(settings.db_url)
    holder = rq.Holder.this_process(run_id)
    deadline = time.monotonic() + wait_s
    while True:
        claimed = rq.claim_batch(engine, spec.name, 0 if force else spec.erasure.window_minutes, run_id, holder=holder)
        if not claimed.busy or time.monotonic() >= deadline:
            break
        time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))
    if claimed.busy:
        raise rq.ErasureBusy(claimed.reason)
    if claimed.batch_id is None:
        return {"batch": None, "reason": claimed.reason}
    try:
        return _process(spec, settings, claimed, run_meta)
    finally:  # closed or kept open, the lease is gone already; an error leaves the batch to be resumed
        rq.release(engine, spec.name, holder)


def _process(
    spec: ModelSpec, settings: Settings, claimed: rq.Claimed, run_meta: dict[str, Any] | None
) -> dict[str, Any]:
    engine = get_engine(settings.db_url)
    assert claimed.batch_id is not None
    b = claimed.batch_id
    phases: dict[str, float] = {}
    t = time.perf_counter()
    purged = purge(spec, settings, b)
    phases["purge"] = time.perf_counter() - t
    t = time.perf_counter()
    planned = plan_models(spec, settings, b)
    for live in planned["live"]:
        retrain(spec, settings, b, live["version"], run_meta or {})
    phases["retrain"] = time.perf_counter() - t
    t = time.perf_counter()
    for key, value in rq.batch(engine, b)["steps"].items():
        if key.startswith("retrain/") and value.get("ok"):
            gates(spec, settings, b, value["version"])
    phases["gates"] = time.perf_counter() - t
    t = time.perf_counter()
    switched = switch(spec, settings, b)
    phases["switch"] = time.perf_counter() - t
    t = time.perf_counter()
    scanned = verify(spec, settings, b)
    phases["scan"] = time.perf_counter() - t
    closed = close(spec, settings, b)
    return {
        "batch": b,
        "requests": claimed.requests,
        "purged": purged,
        "models": planned,
        "switch": switched,
        "scan": {"clean": scanned["clean"], "hits": scanned["hits"]},
        "closed": closed,
        "phases": {k: round(v, 3) for k, v in phases.items()},
    }
