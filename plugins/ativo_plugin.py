"""Ativo's Airflow plugin: template macros, and the Prometheus endpoint for budgets, spend and GPU leases.

The endpoint is mounted on Airflow's api-server at ``/ativo/metrics`` (scrape it like any exporter). The app is
built on its first request, so the other Airflow processes that load plugins never import its web stack.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from airflow.plugins_manager import AirflowPlugin


def ativo_partition_uri(spec: str, ds: str) -> str:
    """Object-store URI of a spec's lake partition for the date ``ds`` (YYYY-MM-DD)."""
    from ativo.config import load_settings
    from ativo.data.features import partition_key

    settings = load_settings()
    return f"{settings.store_uri.rstrip('/')}/{partition_key(spec, ds)}"


def metrics_app() -> Any:
    """A FastAPI app with ``GET /metrics``: the platform DB's budget, spend and lease figures, read per scrape."""
    from fastapi import FastAPI, Response
    from prometheus_client import CONTENT_TYPE_LATEST

    app = FastAPI(title="Ativo metrics", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/metrics")
    def metrics() -> Response:
        from ativo.compute.metrics import render
        from ativo.config import load_settings
        from ativo.store.db import get_engine

        settings = load_settings()
        return Response(render(get_engine(settings.db_url), settings.prices), media_type=CONTENT_TYPE_LATEST)

    return app


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
    """Macros (``{{ macros.ativo_plugin.ativo_partition_uri('adult_income', ds) }}``) and ``/ativo/metrics``."""

    name = "ativo_plugin"
    macros = [ativo_partition_uri]
    fastapi_apps = [{"app": LazyASGI(metrics_app), "url_prefix": "/ativo", "name": "Ativo metrics"}]
