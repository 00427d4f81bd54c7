"""The hooks of the provider's connection types read their Airflow connection (here from AIRFLOW_CONN_* variables)."""

from __future__ import annotations

import json

import pytest

from ativo.airflow.hooks import AtivoDatabaseHook, InferenceApiHook, MlflowHook


def connection(monkeypatch, conn_id: str, **fields) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


def test_platform_db_hook_builds_a_postgres_url_from_the_fields(monkeypatch):
    fields = {"host": "db.internal", "port": 5432, "login": "ativo", "password": "p@ss:w/rd", "schema": "ativo"}
    connection(monkeypatch, "ativo_db", conn_type="ativo_db", **fields)
    assert AtivoDatabaseHook().get_uri() == "postgresql+psycopg2://ativo:p%40ss%3Aw%2Frd@db.internal:5432/ativo"


def test_platform_db_hook_opens_the_url_of_its_extra_at_the_current_schema(monkeypatch, tmp_path):
    from sqlalchemy import inspect

    url = f"sqlite:///{tmp_path / 'platform.db'}"
    connection(monkeypatch, "team_db", conn_type="ativo_db", extra={"url": url})
    hook = AtivoDatabaseHook(ativo_db_conn_id="team_db")
    assert hook.get_uri() == url
    engine = hook.get_conn()
    assert str(engine.url) == url and {"ativo_alembic_version", "budgets"} <= set(inspect(engine).get_table_names())


def test_platform_db_hook_refuses_a_connection_without_host_or_url(monkeypatch):
    connection(monkeypatch, "ativo_db", conn_type="ativo_db")
    with pytest.raises(ValueError, match="no host and no extra 'url'"):
        AtivoDatabaseHook().get_uri()


@pytest.mark.parametrize(
    ("fields", "uri"),
    [
        ({"host": "mlflow", "port": 5000}, "http://mlflow:5000"),
        ({"host": "mlflow.example", "extra": {"scheme": "https"}}, "https://mlflow.example"),
        ({"host": "https://mlflow.example/"}, "https://mlflow.example"),
    ],
    ids=["host-port", "https-extra", "full-url"],
)
def test_mlflow_hook_tracking_uri(monkeypatch, fields, uri):
    connection(monkeypatch, "ativo_mlflow", conn_type="ativo_mlflow", **fields)
    hook = MlflowHook()
    assert hook.tracking_uri() == uri
    assert hook.get_conn().tracking_uri == uri


def test_inference_api_hook_sends_the_key_as_a_bearer_token(monkeypatch):
    connection(monkeypatch, "ativo_inference", conn_type="ativo_inference", host="serve", port=8000, password="key-1")
    hook = InferenceApiHook()
    assert hook.base_url() == "http://serve:8000"
    with hook.get_conn() as client:
        assert str(client.base_url) == "http://serve:8000" and client.headers["authorization"] == "Bearer key-1"


def test_inference_api_hook_refuses_a_connection_without_host(monkeypatch):
    connection(monkeypatch, "ativo_inference", conn_type="ativo_inference", password="key-1")
    with pytest.raises(ValueError, match="has no host"):
        InferenceApiHook().base_url()
