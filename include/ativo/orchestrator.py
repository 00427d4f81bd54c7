"""Airflow's REST API (v2), as the CLI, the launcher and the test platform call it: no Airflow import, no DB access.

Airflow is reached with the settings ``ATIVO_AIRFLOW_URL`` (default the embedded one on ``ATIVO_AIRFLOW_PORT``),
``ATIVO_AIRFLOW_USERNAME`` and ``ATIVO_AIRFLOW_PASSWORD``, which a platform writes to the home's settings file
(:class:`ativo.config.Settings`): the library reads no file of Airflow's.
"""

from __future__ import annotations

from typing import Any

from ativo.config import Settings, settings_file
from ativo.errors import SettingsError
from ativo.http import send_json


class AirflowAPI:
    """REST v2 calls with a bearer token from the auth manager's ``/auth/token``."""

    def __init__(self, base: str, password: str, username: str = "admin") -> None:
        self.base = base.rstrip("/")
        self.password = password
        self.username = username
        self.token: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> AirflowAPI:
        """The API the settings name (``ATIVO_AIRFLOW_URL``), signed in with their credentials.

        Raises:
            SettingsError: no ``ATIVO_AIRFLOW_PASSWORD`` is set (in the environment or the home's settings file).
        """
        if settings.airflow_password is None:
            raise SettingsError(
                f"no password for Airflow's API at {settings.airflow_url}: set ATIVO_AIRFLOW_PASSWORD (the password "
                f"of {settings.airflow_username!r}), in the environment or in {settings_file(settings.home)} (the "
                "local platform writes it there when `make run` starts Airflow)"
            )
        return cls(settings.airflow_url, settings.airflow_password.get_secret_value(), settings.airflow_username)

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
