"""The ERASURE DAG of one spec: requests → one batch per window → purge → retrain → switch → verify → receipts.

The steps are :mod:`ativo.erasure.process`.

It runs on the spec's ``erasure.cron`` (the DB is the record: every pending request is found there), on a trigger
with conf ``{"request_id": ..., "force": true}`` from the op-only routes that file the request into the platform DB
first (``ativo erasure request --now``, the page's ``POST /ativo/erasure/requests``), and on the queue. Subject ids
never need to pass through Airflow: an old client's conf ``{"subjects": [...], "request_id": ...}`` still works (only
the ``op`` role may trigger it, see :mod:`ativo.airflow.auth`): it is filed into the platform DB, then redacted in
Airflow's metadata DB and handled by its request id (:mod:`ativo.airflow.redaction` says where and when that runs,
under the scheduler and under ``dag.test()``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from airflow.sdk import (
    DAG,
    Asset,
    AssetOrTimeSchedule,
    Param,
    dag,
    get_current_context,
    task,
)
from airflow.sdk.exceptions import AirflowSkipException

from ativo import naming
from ativo.airflow.compute import ComputeOperator, run_meta
from ativo.airflow.dags.common import dag_kwargs, schedule
from ativo.airflow.failure import fail
from ativo.config import load_settings
from ativo.spec import ModelSpec

QUEUE_CONN = "ativo_erasure_queue"
QUEUE_REDELIVERY_S = 300  # a message the DAG has not filed and deleted comes back after this


def _require_queue_providers() -> None:
    """Check that the providers an SQS queue needs are installed (Ativo's ``sqs`` extra).

    Raises:
        ImportError: one is missing; the message names it and the extra, and the setting that asked for the queue.
    """
    import importlib.util

    needed = {
        "airflow.providers.common.messaging": "apache-airflow-providers-common-messaging",
        "airflow.providers.amazon": "apache-airflow-providers-amazon",
    }
    missing = []
    for module, dist in needed.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # a parent package is missing
            found = False
        if not found:
            missing.append(dist)
    if missing:
        raise ImportError(
            f"ATIVO_ERASURE_QUEUE_URL is set, and an erasure request queue needs {' and '.join(missing)}: "
            "install Ativo's sqs extra (pip install 'ativo[sqs]'), or unset it"
        )


def queue_asset(spec: ModelSpec, queue_url: str) -> Asset:
    """The spec's erasure-request queue as an Asset watched by a ``MessageQueueTrigger`` on SQS.

    The trigger leaves messages in the queue (hidden for :data:`QUEUE_REDELIVERY_S`): the DAG deletes each one once it
    is filed, so a message the platform has not recorded is never lost. Only messages whose ``spec`` is this spec
    fire it.
    """
    _require_queue_providers()
    from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger
    from airflow.sdk import AssetWatcher

    trigger = MessageQueueTrigger(
        scheme="sqs",
        sqs_queue=queue_url,
        aws_conn_id=QUEUE_CONN,
        max_messages=10,
        waiter_delay=5,
        wait_time_seconds=5,
        delete_message_on_reception=False,
        visibility_timeout=QUEUE_REDELIVERY_S,
        message_filtering="jsonpath",
        message_filtering_config="spec",
        message_filtering_match_values=[spec.name],
    )
    return Asset(
        name=f"{spec.name}.erasure_requests",
        uri=f"x-ativo://erasure-requests/{spec.name}",
        watchers=[AssetWatcher(name=f"{spec.name}_erasure_queue", trigger=trigger)],
    )


def _schedule(spec: ModelSpec) -> Any:
    cron = schedule(spec, "erasure")
    queue_url = load_settings().erasure_queue_url
    if not queue_url:
        return cron
    return AssetOrTimeSchedule(timetable=cron, assets=queue_asset(spec, queue_url))


def _batch(value: Any) -> int:
    if not value or value.get("batch") is None:
        raise AirflowSkipException("no erasure batch in this run (see collect)")
    return int(value["batch"])


class RetrainOperator(ComputeOperator):
    """Retrain one live version on redacted data, under the pool, a GPU lease and the budget's erasure reserve."""

    template_fields = ("batch", "version")

    def __init__(self, *, batch: Any, version: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batch, self.version = batch, version

    def run(self, context: Any, placement: Any) -> Any:
        """Train with the version's recorded parameters (checkpointed: a retry after a kill resumes)."""
        from ativo.erasure.process import retrain

        result = retrain(
            self.spec, load_settings(), int(self.batch), str(self.version), run_meta(context), threads=placement.threads
        )
        if not result.get("ok"):  # recorded on the batch: verify keeps it open and pages; the others go on
            logging.getLogger("ativo.erasure").error("version %s was not retrained: %s", self.version, result["reason"])
            return {"batch": int(self.batch), "from": result["from"], "version": None, "ok": False}
        return {"batch": int(self.batch), "from": result["from"], "version": result["version"], "ok": True}


def _all_runs(api: Any, dag_id: str) -> Iterator[dict[str, Any]]:
    """Every run of ``dag_id`` through the REST API, page by page (not only the newest page)."""
    offset = 0
    while True:
        page = api.get(f"/api/v2/dags/{dag_id}/dagRuns?limit=100&offset={offset}&order_by=id")["dag_runs"]
        yield from page
        if len(page) < 100:
            return
        offset += len(page)


def forget_intake_runs(spec: ModelSpec, current_run_id: str) -> list[str]:
    """Delete the finished runs of this DAG that an old client triggered with subjects, once their request closed.

    Their conf is redacted already (:mod:`ativo.airflow.redaction`: by the scheduler when the run started); the run
    itself, its task instances and XComs go too, through the REST API (every page of runs), and it is audited.
    Without an API to reach (``dag.test()``, no platform started in this home) nothing is deleted.
    """
    import logging

    from ativo import audit
    from ativo.erasure import requests as rq
    from ativo.orchestrator import AirflowAPI
    from ativo.store.db import get_engine

    log = logging.getLogger("ativo.erasure")
    settings = load_settings()
    if not settings.airflow_api and settings.airflow_password is None:  # no platform started in this home
        return []
    engine = get_engine(settings.db_url)
    dag_id = naming.erasure_dag_id(spec.name)
    try:
        api = AirflowAPI.from_settings(settings)
        runs = list(_all_runs(api, dag_id))
    except Exception as err:  # the next run tries again
        log.warning("could not list %s runs to delete closed requests' conf: %s", dag_id, err)
        return []
    deleted = []
    for run in runs:
        conf = run.get("conf") or {}
        named = conf.get("subjects") or conf.get("subjects_redacted")
        if not named or run["dag_run_id"] == current_run_id or run["state"] not in ("success", "failed"):
            continue
        request_id = conf.get("request_id") or run["dag_run_id"]
        req = rq.get(engine, request_id)
        if req is None or req["status"] != "closed":
            continue
        try:
            api.delete(f"/api/v2/dags/{dag_id}/dagRuns/{run['dag_run_id']}")
        except Exception as err:
            log.warning(
                "could not delete run %s (its conf names the subjects of %s): %s", run["dag_run_id"], request_id, err
            )
            continue
        audit.append(engine, "erasure_airflow_run_deleted", "erasure", request_id, {"dag_run_id": run["dag_run_id"]})
        deleted.append(run["dag_run_id"])
    if deleted:
        log.info("deleted %d finished run(s) whose conf named erased subjects: %s", len(deleted), ", ".join(deleted))
    return deleted


def _file_queue_messages(spec: ModelSpec, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """File queue messages, then delete them from the queue (a message not deleted comes back and is filed again)."""
    from airflow.providers.amazon.aws.hooks.sqs import SqsHook

    from ativo.erasure.queue import file_messages
    from ativo.hashing import platform_pepper
    from ativo.serve.keys import ApiKeys
    from ativo.store.db import get_engine

    settings = load_settings()
    filed = file_messages(
        get_engine(settings.db_url),
        spec.name,
        messages,
        ApiKeys(settings.home / "serve" / "api_keys.json"),
        platform_pepper(settings),
        min_subject_length=spec.erasure.min_subject_id_length,
    )
    if filed.delete:
        client = SqsHook(aws_conn_id=QUEUE_CONN).get_conn()
        for i in range(0, len(filed.delete), 10):
            client.delete_message_batch(QueueUrl=settings.erasure_queue_url, Entries=filed.delete[i : i + 10])
    return {"filed": [a["request_id"] for a in filed.acks], "refused": filed.refused}


def build_erasure_dag(spec: ModelSpec) -> DAG:
    """Erasure of one spec (see the module doc)."""

    @dag(
        schedule=_schedule(spec),
        **dag_kwargs(spec, "erasure"),
        params={
            "subjects": Param(
                None,
                type=["null", "array"],
                items={"type": "string"},
                description="Leave empty: file requests on the Ativo page or with `ativo erasure request`, which "
                "keep the ids out of Airflow. Ids given here (older clients) are filed, then redacted "
                "from this run's conf and the event log.",
            ),
            "request_id": Param(
                None, type=["null", "string"], description="Your id for the request (idempotent); empty: one is made."
            ),
            "force": Param(
                False,
                type="boolean",
                description="Process pending requests now, without waiting for "
                f"the {spec.erasure.window_minutes:g}-minute coalescing window.",
            ),
        },
    )
    def erasure() -> None:
        @task
        def receive() -> dict[str, Any]:
            """File the run's own requests before anything else: its conf (REST or UI), or its queue messages."""
            from ativo.erasure.requests import InvalidRequest, file_request, request_id_for
            from ativo.hashing import platform_pepper
            from ativo.store.db import get_engine

            context = get_current_context()
            params = context["params"]
            messages = [
                m
                for evs in (context.get("triggering_asset_events") or {}).values()
                for e in evs
                for m in ((e.extra or {}).get("payload") or {}).get("message_batch") or []
            ]
            if messages:
                filed = _file_queue_messages(spec, messages)
                from ativo.airflow.redaction import redact_in_process

                redact_in_process()  # dag.test() only; under a scheduler the run's end does it
                return filed
            if not params.get("subjects"):
                raise AirflowSkipException(
                    "no subjects in the run's conf (the request is in the platform DB): pending requests are processed"
                )
            # An old client's conf that the scheduler's redactor has not seen (dag.test(), or a deployment without
            # Ativo's plugin): filed first, then redacted where this process may reach Airflow's DB.
            from ativo.airflow.redaction import redact_in_process

            settings = load_settings()
            actor = getattr(context["dag_run"], "triggering_user_name", None) or "airflow"
            try:
                ack = file_request(
                    get_engine(settings.db_url),
                    spec=spec.name,
                    subjects=params["subjects"],
                    pepper=platform_pepper(settings),
                    actor=actor,
                    channel="rest",
                    request_id=params.get("request_id") or request_id_for(context["run_id"]),
                    min_subject_length=spec.erasure.min_subject_id_length,
                )
            except InvalidRequest as err:
                fail(str(err))
            if redact_in_process() is None:
                logging.getLogger("ativo.erasure").warning(
                    "this run's conf names subjects and this task may not change Airflow's metadata DB: the "
                    "scheduler's redactor (Ativo's plugin listener) removes them when the run ends; until then the "
                    "verification scan finds them and keeps the batch open"
                )
            return ack.to_dict()

        @task(trigger_rule="none_failed")
        def collect() -> dict[str, Any]:
            """Claim the batch: an unfinished one, else every pending request once the window has ended.

            Requests past the SLA page on-call (once).
            """
            from ativo.airflow.notifier import send_to_oncall
            from ativo.erasure import requests as rq
            from ativo.ops.alerts import erasure_payload
            from ativo.store.db import get_engine

            context = get_current_context()
            engine = get_engine(load_settings().db_url)
            forget_intake_runs(spec, context["run_id"])
            late = rq.overdue(engine, spec.name, spec.erasure.sla_hours)
            if late:
                ids = [r["request_id"] for r in late]
                send_to_oncall(
                    spec.oncall_connection,
                    erasure_payload(
                        spec.name, "erasure_sla", None, ids, f"older than the {spec.erasure.sla_hours:g} h SLA"
                    ),
                )
                rq.mark_paged(engine, ids)
            force = bool(context["params"].get("force"))
            claimed = rq.claim_batch(engine, spec.name, 0 if force else spec.erasure.window_minutes, context["run_id"])
            if claimed.batch_id is None:
                raise AirflowSkipException(claimed.reason)
            return {"batch": claimed.batch_id, "requests": len(claimed.requests), "resumed": claimed.resumed}

        @task
        def purge(claimed: dict[str, Any]) -> dict[str, Any]:
            """Find and purge every place the subjects are; make the new dataset version (idempotent)."""
            from ativo.erasure.process import purge as run

            done = run(spec, load_settings(), _batch(claimed))
            return {
                "batch": _batch(claimed),
                "lake_rows": done["lake_rows"],
                "after": done["dataset_after"],
                "redacted_versions": done["redacted_versions"],
            }

        @task
        def find_models(purged: dict[str, Any]) -> list[dict[str, Any]]:
            """The live versions trained on an affected dataset version: one retraining each."""
            from ativo.erasure.process import plan_models

            planned = plan_models(spec, load_settings(), _batch(purged))
            return [{"batch": _batch(purged), "version": v["version"]} for v in planned["live"]]

        @task
        def gates(trained: dict[str, Any]) -> dict[str, Any]:
            """Every gate on one retrained version (the same gates as any candidate)."""
            from ativo.erasure.process import gates as run

            if not trained.get("ok"):
                raise AirflowSkipException(f"version {trained['from']} was not retrained: nothing to gate")
            report = run(spec, load_settings(), int(trained["batch"]), str(trained["version"]))
            return {k: report[k] for k in ("version", "passed", "failed_gates")}

        @task(trigger_rule="all_done")
        def switch(purged: dict[str, Any] | None) -> dict[str, Any]:
            """Blue/green: every live alias moves to its retrained version at once; the other versions are retired."""
            from ativo.erasure.process import switch as run

            done = run(spec, load_settings(), _batch(purged))
            return {"batch": _batch(purged), "replaced": done["replaced"], "failures": done["failures"]}

        @task(trigger_rule="all_done")
        def verify(switched: dict[str, Any] | None, claimed: dict[str, Any] | None) -> dict[str, Any]:
            """Scan every store for the subjects, their record ids and their pseudonyms; then receipts, or open."""
            from ativo.airflow.notifier import send_to_oncall
            from ativo.erasure import requests as rq
            from ativo.erasure.process import close
            from ativo.erasure.process import verify as scan
            from ativo.ops.alerts import erasure_payload
            from ativo.store.db import get_engine

            settings = load_settings()
            if not switched and claimed and claimed.get("batch") is not None:  # a step before failed: say so
                b = int(claimed["batch"])
                engine = get_engine(settings.db_url)
                steps = rq.batch(engine, b)["steps"]
                failed = [s for s in ("purge", "models", "switch") if s not in steps]
                reason = f"step(s) {', '.join(failed)} did not finish (see the run's failed task); it is retried"
                rq.mark(engine, b, "open", reason)
                send_to_oncall(
                    spec.oncall_connection,
                    erasure_payload(spec.name, "erasure_open", b, rq.batch(engine, b)["requests"], reason),
                )
                fail(f"erasure batch {b} stays open: {reason}")
            b = _batch(switched)
            engine = get_engine(settings.db_url)
            before = rq.batch(engine, b)
            # dag.test() writes its own stale copy of the run back after each task: sweep again before the scan
            # (a worker's task may not, and returns at once: the scheduler's listener redacted before the first task)
            from ativo.airflow.redaction import redact_in_process

            redact_in_process()
            result = scan(spec, settings, b)
            closed = close(spec, settings, b)
            if not closed["closed"]:
                if before["status"] != "open" or (before["steps"].get("open_reason") != closed["reason"]):
                    send_to_oncall(
                        spec.oncall_connection,
                        erasure_payload(spec.name, "erasure_open", b, before["requests"], closed["reason"]),
                    )
                    rq.record_step(engine, b, "open_reason", closed["reason"])
                fail(f"erasure batch {b} stays open: {closed['reason']}")
            return {"batch": b, "clean": result["clean"], "receipts": len(closed["receipts"])}

        claimed = collect()
        receive() >> claimed
        purged = purge(claimed)  # type: ignore[arg-type]  # XComArg at parse time
        live = find_models(purged)  # type: ignore[arg-type]
        trained = RetrainOperator.partial(
            task_id="retrain",
            spec=spec.name,
            priority="erasure",
            task_key=f"{spec.name}.erasure_retrain",
            map_index_template="{{ task.version }}",
            doc_md="Retrain one live version with its recorded parameters on its redacted dataset version.",
        ).expand_kwargs(live)
        judged = gates.expand(trained=trained.output)
        switched = switch(purged)  # type: ignore[arg-type]
        judged >> switched
        verify(switched, claimed)  # type: ignore[arg-type]

    return erasure()
