"""The on-call failure notifier: every Ativo DAG has it in ``default_args``."""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import BaseNotifier, Connection

from ativo.alerts import failure_payload, post_webhook, webhook_url_from

log = logging.getLogger(__name__)

RUNBOOK = "README.md, section 'When a task fails'"


def oncall_webhook_url(conn_id: str) -> str | None:
    """The webhook URL of the on-call connection, or None (logged) when it is not configured."""
    try:
        conn = Connection.get(conn_id)
    except Exception as err:  # AirflowNotFoundException and friends
        log.warning("on-call connection %r is not configured (%s): alert not sent", conn_id, err)
        return None
    return webhook_url_from(conn.extra_dejson or {}, conn.host, conn.schema, conn.port)


def send_to_oncall(conn_id: str, payload: dict[str, Any], *, timeout: float = 5.0) -> bool:
    """Post ``payload`` to the on-call webhook; an unconfigured or unreachable one is logged, never raised."""
    url = oncall_webhook_url(conn_id)
    if url is None:
        log.error("ALERT (undelivered): %s", payload["text"])
        return False
    if not post_webhook(url, payload, timeout=timeout):
        log.error("ALERT (webhook unreachable): %s", payload["text"])
        return False
    return True


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
        payload = failure_payload(
            dag_id=ti.dag_id, task_id=ti.task_id, run_id=ti.run_id, try_number=try_number,
            log_url=log_url, error=f"{type(err).__name__}: {err}" if err else None,
            owner=getattr(dag, "owner", None) if dag else None, runbook=RUNBOOK,
        )  # fmt: skip
        send_to_oncall(self.conn_id, payload, timeout=self.timeout)
