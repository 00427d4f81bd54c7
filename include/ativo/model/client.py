"""The MLflow client: the one place the platform builds one, for the tracking server and its model registry.

Every module that talks to MLflow through a client gets it from :func:`mlflow_client` (the registry's writes of
versions, aliases and version tags are :mod:`ativo.model.registry`'s alone). It lives below the registry because
:mod:`ativo.model.artifact`, which the registry imports, reads versions through a client too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from ativo.config import Settings


def mlflow_client(where: Settings | str | None, *, registry_uri: str | None = None) -> MlflowClient:
    """A client on the platform's MLflow: the settings' tracking URI, or a tracking URI as given.

    Args:
        where: the settings (their ``mlflow_tracking_uri``), a tracking URI, or None for MLflow's own default (the
            active tracking URI of this process).
        registry_uri: the model registry's URI when it is not the tracking URI's (MLflow's default).
    """
    from mlflow import MlflowClient

    uri = where if where is None or isinstance(where, str) else where.mlflow_tracking_uri
    return MlflowClient(uri, registry_uri=registry_uri)


def ui_url(settings: Settings) -> str | None:
    """The MLflow UI's address when the tracking store is a server (a local store has no UI to link to)."""
    uri = settings.mlflow_tracking_uri.rstrip("/")
    return uri if uri.startswith(("http://", "https://")) else None


def run_url(settings: Settings, experiment_id: str, run_id: str) -> str | None:
    """A run's page in the MLflow UI (None without a UI)."""
    from urllib.parse import quote

    ui = ui_url(settings)
    return f"{ui}/#/experiments/{quote(str(experiment_id), safe='')}/runs/{quote(str(run_id), safe='')}" if ui else None


def version_url(settings: Settings, name: str, version: str) -> str | None:
    """A registered model version's page in the MLflow UI (None without a UI)."""
    from urllib.parse import quote

    ui = ui_url(settings)
    return f"{ui}/#/models/{quote(str(name), safe='')}/versions/{quote(str(version), safe='')}" if ui else None
