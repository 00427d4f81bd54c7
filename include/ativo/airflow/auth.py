"""Airflow's simple auth manager, with one rule added: only ``op`` may write to what changes serving or erasure.

Only the ``op`` role may start, change, pause or delete runs of a spec's DEPLOY, TRAIN (a run's conf may override
the dataset version, the trials or the parameters) and ERASURE DAGs. Anyone else gets 403 from the REST API and the
UI, and the attempt is audited in the platform's audit log (who, which DAG, when). The deploy DAG checks the gate
record of the version itself too, whoever triggers it (:func:`ativo.deploy.steps.authorized_or_refuse`).

Configured with ``AIRFLOW__CORE__AUTH_MANAGER=ativo.airflow.auth.AtivoAuthManager`` (the embedded platform and
``docker-compose.yaml`` do).
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager, SimpleAuthManagerRole

from ativo.naming import DEPLOY_SUFFIX, ERASURE_SUFFIX, TRAIN_SUFFIX

log = logging.getLogger(__name__)

OP_ONLY_SUFFIXES = (DEPLOY_SUFFIX, TRAIN_SUFFIX, ERASURE_SUFFIX)


def may_erase(role: str | None) -> bool:
    """Whether a simple-auth-manager role may file erasure requests (``op`` and above)."""
    if not role:
        return False
    try:
        return SimpleAuthManagerRole[role.upper()].order >= SimpleAuthManagerRole.OP.order
    except KeyError:
        return False


class AtivoAuthManager(SimpleAuthManager):
    """:class:`SimpleAuthManager` where writing to a deploy, train or erasure DAG needs the ``op`` role."""

    def is_authorized_dag(self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None) -> bool:
        """The simple manager's answer, except that a write on a deploy, train or erasure DAG needs ``op``."""
        allowed = super().is_authorized_dag(method=method, user=user, access_entity=access_entity, details=details)
        dag_id = getattr(details, "id", None)
        if method == "GET" or not dag_id or not str(dag_id).endswith(OP_ONLY_SUFFIXES):
            return allowed
        if allowed and may_erase(getattr(user, "role", None)):
            return True
        if str(dag_id).endswith(ERASURE_SUFFIX):
            _audit_refusal(str(dag_id), user, str(method))
        else:
            _audit_operation_refusal(str(dag_id), user, str(method))
        return False


def _audit_operation_refusal(dag_id: str, user: Any, method: str) -> None:
    """Audit a refused write on a deploy or train DAG: its id when it is a spec's, else the id's keyed pseudonym.

    The DAG id is the caller's (a path of the REST API): ``<subject id>__train`` must not put a subject id into the
    audit log, whose rows cannot be edited (that subject's erasure would never verify).
    """
    try:
        from ativo.audit import PSEUDONYMS, append, pseudonyms
        from ativo.config import load_settings
        from ativo.hashing import platform_pepper
        from ativo.naming import dag_ids
        from ativo.spec import load_specs
        from ativo.store.db import get_engine

        settings = load_settings()
        known = {d for s in load_specs(settings.specs_dir)[0] for d in dag_ids(s.name)}
        ref = dag_id if dag_id in known else "(no such DAG)"
        payload: dict[str, Any] = {
            "method": method,
            "role": getattr(user, "role", None),
            "channel": "rest",
            "why": "writing to this DAG changes what serves: it needs the op role",
        }
        if dag_id not in known:
            payload[PSEUDONYMS] = pseudonyms({"dag_id": dag_id}, platform_pepper(settings))
        append(
            get_engine(settings.db_url), "operation_refused", str(getattr(user, "username", "anonymous")), ref, payload
        )
    except Exception:  # the refusal stands even when the audit log cannot be written
        log.exception("could not audit a refused write (%s by %s)", method, getattr(user, "username", "anonymous"))


def _audit_refusal(dag_id: str, user: Any, method: str) -> None:
    """Audit a refused write on an erasure DAG id: the spec when it is one, else the id's keyed pseudonym only.

    The DAG id is the caller's (a path of the REST API): ``<subject id>__erasure`` must not put the subject id in
    the audit log, whose rows cannot be edited (the subject's erasure would stay open forever).
    """
    try:
        from ativo.config import load_settings
        from ativo.erasure.requests import NO_SPEC, refuse
        from ativo.hashing import platform_pepper
        from ativo.naming import erasure_dag_id
        from ativo.spec import load_specs
        from ativo.store.db import get_engine

        settings = load_settings()
        spec = next((s.name for s in load_specs(settings.specs_dir)[0] if erasure_dag_id(s.name) == dag_id), None)
        role = getattr(user, "role", None)
        refuse(
            get_engine(settings.db_url),
            spec=spec or NO_SPEC,
            actor=str(getattr(user, "username", "anonymous")),
            channel="rest",
            why=f"{method} on {dag_id if spec else 'an erasure DAG id of no spec'} by role {role!r}",
            pepper=platform_pepper(settings),
            hostile=None if spec else {"dag_id": dag_id},
        )
    except Exception:  # the refusal stands even when the audit log cannot be written
        log.exception(
            "could not audit a refused erasure attempt (%s by %s)", method, getattr(user, "username", "anonymous")
        )
