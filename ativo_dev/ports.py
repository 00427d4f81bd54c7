"""Loopback ports of the local platform's services, which the launcher starts (``ATIVO_<SERVICE>_PORT``).

Airflow's port is the library's own setting (``Settings.ports.airflow``: the CLI and the tasks reach Airflow's API
there); the other services are the launcher's, and the library reaches them through the URLs the launcher hands
every process it starts (``ATIVO_MLFLOW_TRACKING_URI``, ``ATIVO_SERVE_URLS``, the ``ativo_oncall`` connection).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import Field, ValidationError

from ativo.config import Ports
from ativo.errors import SettingsError


class EmbeddedPorts(Ports):
    """Every service's port: the library's (``airflow``) and the launcher's own; validated like the library's."""

    mlflow: int = Field(5000, validation_alias="ATIVO_MLFLOW_PORT")
    serve: int = Field(8000, validation_alias="ATIVO_SERVE_PORT")
    alert: int = Field(8099, validation_alias="ATIVO_ALERT_PORT")
    pg: int = Field(55432, validation_alias="ATIVO_PG_PORT")  # the embedded PostgreSQL (5432 is left to a system one)
    dask: int = Field(8786, validation_alias="ATIVO_DASK_PORT")  # `make run DASK=1`: the Dask scheduler


def variables() -> dict[str, str]:
    """Service name → its environment variable (``pg`` → ``ATIVO_PG_PORT``)."""
    return {name: str(field.validation_alias) for name, field in EmbeddedPorts.model_fields.items()}


def embedded_ports(env: Mapping[str, str] | None = None) -> EmbeddedPorts:
    """The ports ``env`` (``os.environ`` when omitted) sets, the defaults for the rest; an empty variable is unset.

    Raises:
        SettingsError: a variable is not a TCP port; the message names it.
    """
    env = os.environ if env is None else env
    given = {var: env[var] for var in variables().values() if env.get(var, "").strip()}
    try:
        return EmbeddedPorts(**given)
    except ValidationError as exc:
        raise SettingsError(
            "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors(include_url=False))
        ) from None
