"""Paging on-call: Slack-compatible webhook posts with a short timeout and a few retries, and their bounds.

Every string a payload carries is bounded (:data:`ALERT_CHARS`): an error that quotes a huge value still makes a
message of a readable size. What a page says is built by :mod:`ativo.ops.alerts`; any layer may page.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from ativo.http import HttpError, request

log = logging.getLogger(__name__)

ALERT_CHARS = 1500
"""At most this many characters of any one string go into an alert (a longer one is cut and ends in ``…`` and its
full length)."""


def bounded(payload: Any, limit: int = ALERT_CHARS) -> Any:
    """``payload`` (JSON-like) with every string in it cut to ``limit`` characters, saying how long it was.

    A cut string, ``…`` and length included, is at most ``limit`` long: bounding twice changes nothing.
    """
    if isinstance(payload, str):
        if len(payload) <= limit:
            return payload
        suffix = f"… ({len(payload)} chars)"
        return payload[: max(limit - len(suffix), 0)] + suffix
    if isinstance(payload, dict):
        return {k: bounded(v, limit) for k, v in payload.items()}
    if isinstance(payload, list | tuple):
        return [bounded(v, limit) for v in payload]
    return payload


def with_runbook(payload: dict[str, Any], airflow_url: str) -> dict[str, Any]:
    """``payload`` with the URL of its runbook (by kind) as a field, in ``text`` and in ``ativo.runbook_url``.

    A payload that already names its runbook, or whose kind has none, is returned unchanged.
    """
    from ativo import runbooks

    doc = payload.setdefault("ativo", {})
    slug = runbooks.slug_for(payload)
    if slug is None or doc.get("runbook_url"):
        return payload
    link = runbooks.url(slug, airflow_url)
    doc["runbook_url"] = link
    payload["text"] = f"{payload.get('text', '')} · runbook: {link}"
    for attachment in payload.get("attachments") or []:
        fields = [f for f in attachment.setdefault("fields", []) if f.get("title") != "Runbook"]
        attachment["fields"] = [*fields, {"title": "Runbook", "value": link, "short": False}]
    return payload


def stored_link(uri: str | None, airflow_url: str, store_uri: str | None = None) -> str | None:
    """An HTTP link to a stored report, card or record, opened through the Ativo page by its reference.

    The reference (:func:`ativo.store.reports.ref_in`) never names a host path; a store file needs the store's root
    (``store_uri``) for one. A URI without a reference gets the older ``/ativo/files?uri=`` form, which the page
    redirects to the report when it is one and answers 410 otherwise.
    """
    from urllib.parse import quote

    from ativo.store.reports import ref_in

    if not uri:
        return None
    base = f"{airflow_url.rstrip('/')}/ativo"
    ref = ref_in(store_uri, uri)
    return f"{base}/reports/{quote(ref)}" if ref else f"{base}/files?uri={quote(uri, safe='')}"


WEBHOOK_RETRY_STATUSES = frozenset({408, 425, 429, *range(500, 600)})
"""Answers of a webhook worth trying again (a 4xx other than these will be refused again)."""


def post_webhook(url: str, payload: dict[str, Any], *, timeout: float = 5.0, attempts: int = 3) -> bool:
    """POST ``payload`` as JSON (its strings bounded); retries transient failures. Returns whether it was accepted.

    Posting an alert twice is harmless (a duplicate message), so unlike other POSTs it is tried ``attempts`` times:
    on a failed connection, a timeout, or a transient status (:data:`WEBHOOK_RETRY_STATUSES`), pausing 0.5 s × n.
    """
    try:
        resp = request(
            "POST",
            url,
            timeout=timeout,
            doc=bounded(payload),
            attempts=attempts,
            retry_statuses=WEBHOOK_RETRY_STATUSES,
            backoff=0.5,
            redact=True,
        )
    except HttpError as err:
        log.warning("webhook post failed: %s", err)
        return False
    if 200 <= resp.status_code < 300:
        return True
    log.warning("webhook answered HTTP %s: %s", resp.status_code, resp.text[:300])
    return False


def webhook_url_from(extra: dict[str, Any], host: str | None, schema: str | None, port: int | None) -> str | None:
    """The webhook URL of a connection: ``extra.webhook_url``, a full URL in ``host``, or schema://host:port."""
    if extra.get("webhook_url"):
        return str(extra["webhook_url"])
    if not host:
        return None
    if host.startswith(("http://", "https://")):
        return host
    return f"{schema or 'https'}://{host}{f':{port}' if port else ''}"


def oncall_url_from_env(env: dict[str, str], conn_id: str = "ativo_oncall") -> str | None:
    """The on-call webhook of an Airflow connection given as ``AIRFLOW_CONN_<ID>`` (JSON or a URL), or None."""
    raw = env.get(f"AIRFLOW_CONN_{conn_id.upper()}")
    if not raw:
        return None
    try:
        doc = json.loads(raw)
    except ValueError:
        return raw if raw.startswith(("http://", "https://")) else None
    if not isinstance(doc, dict):
        return None
    return webhook_url_from(doc.get("extra") or {}, doc.get("host"), doc.get("schema"), doc.get("port"))
