"""The on-call failure notifier: every Ativo DAG has it in ``default_args``."""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import BaseNotifier, Connection

from ativo.ops.alerts import failure_payload
from ativo.paging import post_webhook, webhook_url_from, with_runbook

log = logging.getLogger(__name__)


def airflow_url() -> str:
    """The Airflow UI's address people open (where runbooks and reports are served): ``Settings.link_url``."""
    from ativo.config import load_settings

    return load_settings().link_url


def oncall_webhook_url(conn_id: str) -> str | None:
    """The webhook URL of the on-call connection, or None (logged) when it is not configured."""
    try:
        conn = Connection.get(conn_id)
    except Exception as err:  # AirflowNotFoundException and friends
        log.warning("on-call connection %r is not configured (%s): alert not sent", conn_id, err)
        return None
    return webhook_url_from(conn.extra_dejson or {}, conn.host, conn.schema, conn.port)


def send_to_oncall(conn_id: str, payload: dict[str, Any], *, timeout: float = 5.0) -> bool:
    """Post ``payload`` (with its runbook's URL) to the on-call webhook; a failure to send is logged, never raised."""
    try:
        payload = with_runbook(payload, airflow_url())
    except Exception:  # a bad setting must not stop the page
        log.exception("could not add the runbook link")
    url = oncall_webhook_url(conn_id)
    if url is None:
        log.error("ALERT (undelivered): %s", payload["text"])
        return False
    if not post_webhook(url, payload, timeout=timeout):
        log.error("ALERT (webhook unreachable): %s", payload["text"])
        return False
    return True


def rejected_batch_line(spec_name: str, err: Any, base_url: str, store_uri: str | None = None) -> str:
    """One line for a rejected landing batch: why, the report over HTTP, the next step and the runbook.

    The report is linked by its reference when the store's root is given (never a host path).
    """
    from ativo import runbooks
    from ativo.paging import stored_link

    day = err.partition
    reasons = "; ".join(err.reasons[:5]) + (f"; … {len(err.reasons) - 5} more" if len(err.reasons) > 5 else "")
    return (
        f"batch {day} of {spec_name} rejected and quarantined ({len(err.reasons)} failed check(s)): {reasons}"
        f" | report: {stored_link(err.report_uri, base_url, store_uri) or 'none'}"
        f" | next: land a corrected batch (ativo land --spec {spec_name} --date {day} --replace FILE), then clear"
        f" this run or run `ativo backfill --spec {spec_name} --from {day} --to {day}`"
        f" | runbook: {runbooks.url('data-quarantined', base_url)}"
    )


def note_run(dag_id: str, run_id: str, note: str) -> bool:
    """Set a DAG run's note (shown on the run in the UI's grid) through the REST API; a failure is logged only."""
    from urllib.parse import quote

    from ativo.config import load_settings
    from ativo.orchestrator import AirflowAPI

    try:
        AirflowAPI.from_settings(load_settings()).patch(
            f"/api/v2/dags/{quote(dag_id)}/dagRuns/{quote(run_id, safe='')}", {"note": note[:1000]}
        )
        return True
    except Exception as err:  # dag.test() has no API server; the verdict is in the log and the alert anyway
        log.warning("could not set the note of %s %s: %s", dag_id, run_id, err)
        return False


class WebhookFailureNotifier(BaseNotifier):
    """Posts a Slack-compatible message to the webhook of an Airflow connection.

    Configure the connection with ``extra.webhook_url`` (or a full URL as its host), for example
    ``AIRFLOW_CONN_ATIVO_ONCALL='{"conn_type": "http", "extra": {"webhook_url": "https://hooks.slack.com/…"}}'``.
    A missing connection or an unreachable webhook is logged, never raised: the alert must not hide the
    original failure.
    """

    template_fields = ("conn_id",)

    def __init__(self, conn_id: str = "ativo_oncall", *, timeout: float = 5.0) -> None:
        super().__init__()
        self.conn_id = conn_id
        self.timeout = timeout

    def notify(self, context: Any) -> None:
        """Send the alert for the failed task in ``context``."""
        ti = context["ti"]
        dag = context.get("dag")
        err = context.get("exception")
        try_number = getattr(ti, "try_number", None)
        log_url = getattr(ti, "log_url", None)
        if log_url and log_url.endswith("try_number=") and try_number is not None:
            log_url += str(try_number)  # the SDK leaves the try out of the link
        from ativo import runbooks

        slug = "data-quarantined" if type(err).__name__ == "BatchRejected" or "quarantined" in str(err) else None
        payload = failure_payload(
            dag_id=ti.dag_id,
            task_id=ti.task_id,
            run_id=ti.run_id,
            try_number=try_number,
            log_url=log_url,
            error=f"{type(err).__name__}: {err}" if err else None,
            owner=getattr(dag, "owner", None) if dag else None,
            runbook=runbooks.url(slug or "task-failed", airflow_url()),
        )
        log.error("on-call paged: %s.%s failed; runbook: %s", ti.dag_id, ti.task_id, payload["ativo"]["runbook_url"])
        send_to_oncall(self.conn_id, payload, timeout=self.timeout)
