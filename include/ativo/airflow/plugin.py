"""Ativo's Airflow plugin: template macros, and the Ativo page in Airflow's UI.

The page's app is mounted on Airflow's api-server at ``/ativo`` (the page behind Airflow's login, runbooks, stored
reports over HTTP, and the platform's Prometheus metrics at ``/ativo/metrics``), and shown in the UI's navigation
as "Ativo". The app is built on its first request, so the other Airflow processes that load plugins never import
its web stack.

Airflow finds the plugin through the package's ``airflow.plugins`` entry point (``ativo = ativo.airflow.plugin:
AtivoPlugin``); ``plugins/ativo_plugin.py`` names it for an Airflow that has the package on its path without
installing it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from airflow.plugins_manager import AirflowPlugin

from ativo.airflow.redaction import redactor


def ativo_partition_uri(spec: str, ds: str) -> str:
    """Object-store URI of a spec's lake partition for the date ``ds`` (YYYY-MM-DD)."""
    from ativo.config import load_settings
    from ativo.store import prefixes

    settings = load_settings()
    return prefixes.uri(settings.store_uri, prefixes.lake_partition(spec, ds))


def page_app() -> Any:
    """The Ativo page, its actions, runbooks, stored reports over HTTP and ``/metrics`` (see ativo.airflow.page)."""
    from ativo.airflow.page import page_app as build

    return build()


class LazyASGI:
    """An ASGI app that builds the real one on its first request."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self.factory = factory
        self.app: Any = None

    async def __call__(self, scope: Any, receive: Callable[[], Awaitable[Any]], send: Any) -> None:
        """Delegate to the real app, building it first if needed."""
        if self.app is None:
            self.app = self.factory()
        await self.app(scope, receive, send)


class AtivoPlugin(AirflowPlugin):
    """Macros (``{{ macros.ativo_plugin.ativo_partition_uri('adult_income', ds) }}``) and the Ativo page."""

    name = "ativo_plugin"
    macros = [ativo_partition_uri]
    fastapi_apps = [{"app": LazyASGI(page_app), "url_prefix": "/ativo", "name": "Ativo"}]
    # the scheduler (and dag.test()) redacts erasure subject ids out of Airflow's metadata DB: ativo.airflow.redaction
    listeners = [redactor]
    external_views = [
        {"name": "Ativo", "href": "/ativo/", "destination": "nav", "url_route": "ativo", "category": None}
    ]
