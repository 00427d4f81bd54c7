"""Hooks for the Airflow connection types Ativo's provider declares: the platform DB, MLflow, the inference API.

An Airflow that already runs can hold these endpoints as Connections (the UI's connection form lists the types),
and a task reaches them through a hook. Each hook only reads its connection and returns what the library takes:
a SQLAlchemy URL or engine, a tracking URI or client, a base URL and key. The library's settings
(``ATIVO_DB_URL``, ``ATIVO_MLFLOW_TRACKING_URI``, ``ATIVO_SERVE_URLS``) stay the default.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook


def _url_of(conn: Any, default_scheme: str) -> str:
    """``scheme://host[:port][/path]`` of an HTTP-like connection; a host that already holds a URL is kept as is."""
    host = (conn.host or "").rstrip("/")
    if "://" in host:
        return host
    if not host:
        raise ValueError(f"connection {conn.conn_id!r} has no host: set the server's address")
    scheme = (conn.extra_dejson or {}).get("scheme") or default_scheme
    port = f":{conn.port}" if conn.port else ""
    path = f"/{conn.schema.strip('/')}" if conn.schema else ""
    return f"{scheme}://{host}{port}{path}"


class AtivoDatabaseHook(BaseHook):
    """The platform database (budgets, leases, audit, promotions) from an ``ativo_db`` connection.

    The connection is either a full SQLAlchemy URL in its extra (``{"url": "postgresql+psycopg2://…"}``, or a
    ``sqlite:///…`` path), or PostgreSQL fields: host, port, login, password and the database as its schema.
    """

    conn_name_attr = "ativo_db_conn_id"
    default_conn_name = "ativo_db"
    conn_type = "ativo_db"
    hook_name = "Ativo platform DB"

    def __init__(self, ativo_db_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.ativo_db_conn_id = ativo_db_conn_id

    def get_uri(self) -> str:
        """The SQLAlchemy URL of the platform database (password included: never log it)."""
        from sqlalchemy.engine import URL

        conn = self.get_connection(self.ativo_db_conn_id)
        url = (conn.extra_dejson or {}).get("url")
        if url:
            return str(url)
        if not conn.host:
            raise ValueError(f"connection {self.ativo_db_conn_id!r} has no host and no extra 'url'")
        return URL.create(
            "postgresql+psycopg2",
            username=conn.login or None,
            password=conn.password or None,
            host=conn.host,
            port=conn.port or None,
            database=conn.schema or None,
        ).render_as_string(hide_password=False)

    def get_conn(self) -> Any:
        """A SQLAlchemy engine on the platform database, its schema at this release's revision."""
        from ativo.store.db import get_engine

        return get_engine(self.get_uri())


class MlflowHook(BaseHook):
    """The MLflow tracking server and model registry from an ``ativo_mlflow`` connection.

    Host (a full URL, or a host name with port and ``{"scheme": "https"}`` in the extra). Login and password are
    not sent by this hook: MLflow's own client reads credentials from its environment.
    """

    conn_name_attr = "mlflow_conn_id"
    default_conn_name = "ativo_mlflow"
    conn_type = "ativo_mlflow"
    hook_name = "Ativo MLflow"

    def __init__(self, mlflow_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.mlflow_conn_id = mlflow_conn_id

    def tracking_uri(self) -> str:
        """The tracking URI, e.g. ``http://mlflow:5000``."""
        return _url_of(self.get_connection(self.mlflow_conn_id), "http")

    def get_conn(self) -> Any:
        """An ``mlflow.MlflowClient`` on the tracking server (and its registry)."""
        from ativo.model.client import mlflow_client

        uri = self.tracking_uri()
        return mlflow_client(uri, registry_uri=uri)


class InferenceApiHook(BaseHook):
    """The inference API (``ativo serve``) from an ``ativo_inference`` connection: its address and API key.

    Host (a full URL, or a host name with port), and the API key as the password; requests send it as
    ``Authorization: Bearer <key>``.
    """

    conn_name_attr = "inference_conn_id"
    default_conn_name = "ativo_inference"
    conn_type = "ativo_inference"
    hook_name = "Ativo inference API"

    def __init__(self, inference_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.inference_conn_id = inference_conn_id

    def base_url(self) -> str:
        """The API's base URL, e.g. ``http://ativo-serve:8000`` (a spec's routes are under ``/models/<spec>/``)."""
        return _url_of(self.get_connection(self.inference_conn_id), "http")

    def get_conn(self) -> Any:
        """An ``httpx.Client`` on the base URL that sends the connection's API key."""
        import httpx

        from ativo.http import new_client

        conn = self.get_connection(self.inference_conn_id)
        client = new_client()  # the TLS settings and redirects every other call of the platform uses
        client.base_url = httpx.URL(_url_of(conn, "http"))
        client.timeout = httpx.Timeout(30.0)
        if conn.password:
            client.headers["Authorization"] = f"Bearer {conn.password}"
        return client
