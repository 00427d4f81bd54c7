"""Airflow's REST API (v2), as the CLI, the launcher and the test platform call it: no Airflow import, no DB access.

The embedded default's admin password is generated once into ``var/airflow/passwords.json``; a deployed Airflow is
reached with ``ATIVO_AIRFLOW_URL``, ``ATIVO_AIRFLOW_USERNAME`` and ``ATIVO_AIRFLOW_PASSWORD``.
"""

from __future__ import annotations

import json
import os
import secrets
from typing import Any

from ativo.config import Settings
from ativo.http import send_json


def admin_password(settings: Settings) -> str:
    """The Airflow admin password (generated once, kept in var/airflow/passwords.json, readable by its owner only)."""
    path = settings.airflow_home / "passwords.json"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written 0600 to a file of its own, then linked into place: never readable by others, never half-written,
        # and two processes starting together agree on the first one's password.
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps({"admin": secrets.token_urlsafe(12)}))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return str(json.loads(path.read_text())["admin"])


class AirflowAPI:
    """REST v2 calls with a bearer token from the auth manager's ``/auth/token``."""

    def __init__(self, base: str, password: str, username: str = "admin") -> None:
        self.base = base.rstrip("/")
        self.password = password
        self.username = username
        self.token: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> AirflowAPI:
        """The API the settings name (``ATIVO_AIRFLOW_URL``), with their credentials or the embedded admin's."""
        password = settings.airflow_password.get_secret_value() if settings.airflow_password else None
        return cls(settings.airflow_url, password or admin_password(settings), settings.airflow_username)

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None, auth: bool = True) -> Any:
        """One call (a GET retried on connection failures and 502/503/504); its JSON answer, None when empty.

        Raises:
            ativo.http.HttpError: unreachable or refused (an OSError, with the status and the parsed body).
        """
        headers = {"Content-Type": "application/json"}
        if auth:
            if self.token is None:
                login = {"username": self.username, "password": self.password}
                self.token = self._call("POST", "/auth/token", login, False)["access_token"]
            headers["Authorization"] = f"Bearer {self.token}"
        return send_json(method, self.base + path, body, timeout=30, headers=headers)

    def get(self, path: str) -> Any:
        """GET an API path."""
        return self._call("GET", path)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        """POST to an API path."""
        return self._call("POST", path, body)

    def patch(self, path: str, body: dict[str, Any]) -> Any:
        """PATCH an API path."""
        return self._call("PATCH", path, body)

    def delete(self, path: str) -> Any:
        """DELETE an API path."""
        return self._call("DELETE", path)

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        """Every run of a DAG."""
        return list(self.get(f"/api/v2/dags/{dag_id}/dagRuns?limit=200&order_by=logical_date")["dag_runs"])

    def create_backfill(
        self,
        dag_id: str,
        start: str,
        end: str,
        *,
        max_active_runs: int,
        reprocess: str = "failed",
        run_backwards: bool = False,
    ) -> dict[str, Any]:
        """Create a backfill of ``dag_id`` over the logical dates ``start``…``end`` (inclusive, ISO timestamps)."""
        body = {
            "dag_id": dag_id,
            "from_date": start,
            "to_date": end,
            "max_active_runs": max_active_runs,
            "reprocess_behavior": reprocess,
            "run_backwards": run_backwards,
            "dag_run_conf": {},
        }
        return dict(self.post("/api/v2/backfills", body))

    def unpause(self, dag_id: str) -> None:
        """Unpause a DAG (DAGs start paused)."""
        self.patch(f"/api/v2/dags/{dag_id}", {"is_paused": False})
