"""Ativo's Airflow plugin: template macros that resolve a spec's storage locations inside DAG templates."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin


def ativo_partition_uri(spec: str, ds: str) -> str:
    """Object-store URI of a spec's lake partition for the date ``ds`` (YYYY-MM-DD)."""
    from ativo.config import load_settings
    from ativo.data.features import partition_key

    settings = load_settings()
    return f"{settings.store_uri.rstrip('/')}/{partition_key(spec, ds)}"


class AtivoPlugin(AirflowPlugin):
    """Registers Ativo's macros (``{{ macros.ativo_plugin.ativo_partition_uri('adult_income', ds) }}``)."""

    name = "ativo_plugin"
    macros = [ativo_partition_uri]
