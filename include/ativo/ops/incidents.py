"""Incidents: a decision someone reports as wrong is traced, kept as a regression case, and paged to on-call."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from ativo.evaluate.regression import IncidentError, keep_incident
from ativo.ops.lineage import LineageError, trace

if TYPE_CHECKING:
    from ativo.config import Settings

log = logging.getLogger(__name__)

__all__ = ["IncidentError", "page_oncall", "record_incident"]


def record_incident(
    settings: Settings, prediction_id: str, expected: Any, note: str, actor: str, spec_name: str | None = None
) -> dict[str, Any]:
    """Trace one decision and keep it in its spec's regression set; returns the case and its lineage.

    Raises:
        IncidentError: an untraceable prediction, or what :func:`~ativo.evaluate.regression.keep_incident` refuses
            (an empty note, a bad label, a conflicting earlier record).
    """
    try:
        chain = trace(settings, prediction_id.strip(), spec_name)
    except LineageError as err:
        raise IncidentError(f"prediction_id: {err}") from None
    return keep_incident(settings, chain, expected, note, actor, spec_name)


def page_oncall(settings: Settings, recorded: dict[str, Any], env: dict[str, str] | None = None) -> bool:
    """Page on-call about a new incident, with its lineage and runbook (the connection comes from the environment)."""
    from ativo.ops.alerts import incident_payload
    from ativo.paging import oncall_url_from_env, post_webhook, with_runbook

    payload = with_runbook(
        incident_payload(recorded["case"], recorded["lineage"], settings.link_url), settings.link_url
    )
    url = oncall_url_from_env(dict(env if env is not None else os.environ), _oncall_connection(settings, recorded))
    if url is None:
        log.error("PAGE (no on-call webhook configured): %s", payload["text"])
        return False
    return post_webhook(url, payload)


def _oncall_connection(settings: Settings, recorded: dict[str, Any]) -> str:
    from ativo.spec import get_spec

    return get_spec(recorded["case"]["spec"], settings.specs_dir).oncall_connection
