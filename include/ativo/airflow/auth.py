"""Airflow's simple auth manager, with one rule added: only ``op`` (or ``admin``) may write to an ERASURE DAG.

Only the ``op`` role may start, change or delete runs of an erasure DAG. Anyone else gets 403 from the REST API and
the UI, and the attempt is audited in the platform's audit log (who, which DAG, when).

Configured with ``AIRFLOW__CORE__AUTH_MANAGER=ativo.airflow.auth.AtivoAuthManager`` (the embedded platform and
``docker-compose.yaml`` do).
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager, SimpleAuthManagerRole

log = logging.getLogger(__name__)

ERASURE_SUFFIX = "__erasure"


def may_erase(role: str | None) -> bool:
    """Whether a simple-auth-manager role may file erasure requests (``op`` and above)."""
    if not role:
        return False
    try:
        return SimpleAuthManagerRole[role.upper()].order >= SimpleAuthManagerRole.OP.order
    except KeyError:
        return False


class AtivoAuthManager(SimpleAuthManager):
    """:class:`SimpleAuthManager` where writing to an erasure DAG needs the ``op`` role."""

    def is_authorized_dag(self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None) -> bool:
        """The simple manager's answer, except that a write on an erasure DAG needs ``op``."""
        allowed = super().is_authorized_dag(method=method, user=user, access_entity=access_entity, details=details)
        dag_id = getattr(details, "id", None)
        if method == "GET" or not dag_id or not str(dag_id).endswith(ERASURE_SUFFIX):
            return allowed
        if allowed and may_erase(getattr(user, "role", None)):
            return True
        _audit_refusal(str(dag_id), user, str(method))
        return False


def _audit_refusal(dag_id: str, user: Any, method: str) -> None:
    try:
        from ativo.config import load_settings
        from ativo.erasure.requests import refuse
        from ativo.store.db import get_engine

        refuse(get_engine(load_settings().db_url), spec=dag_id.removesuffix(ERASURE_SUFFIX),
               actor=str(getattr(user, "username", "anonymous")), channel="rest",
               why=f"{method} on {dag_id} by role {getattr(user, 'role', None)!r}")  # fmt: skip
    except Exception:  # the refusal stands even when the audit log cannot be written
        log.exception("could not audit a refused erasure attempt on %s", dag_id)
