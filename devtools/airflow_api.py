"""The few Airflow REST v2 calls the launcher and the test platform need, and the admin's credentials."""

from __future__ import annotations

import json
import secrets
from typing import Any

from ativo.config import Settings
from ativo.http import send_json


def admin_password(settings: Settings) -> str:
    """The Airflow admin password (generated once, kept in var/airflow/passwords.json)."""
    path = settings.airflow_home / "passwords.json"
    if path.exists():
        return str(json.loads(path.read_text())["admin"])
    path.parent.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(12)
    path.write_text(json.dumps({"admin": password}))
    path.chmod(0o600)
    return password

class AirflowAPI:
    """The few REST v2 calls `make run` needs, with a bearer token from the simple auth manager."""

    def __init__(self, base: str, password: str) -> None:
        self.base = base
        self.password = password
        self.token: str | None = None

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None, auth: bool = True) -> Any:
        """One call (a GET retried on connection failures and 502/503/504); its JSON answer, None when empty.

        Raises:
            ativo.http.HttpError: unreachable or refused (an OSError, with the status and the parsed body).
        """
        headers = {"Content-Type": "application/json"}
        if auth:
            if self.token is None:
                self.token = self._call("POST", "/auth/token", {"username": "admin", "password": self.password}, False)[
                    "access_token"
                ]
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

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        """Every run of a DAG."""
        return list(self.get(f"/api/v2/dags/{dag_id}/dagRuns?limit=200&order_by=logical_date")["dag_runs"])
