"""Ativo's Airflow plugin (ativo.airflow.plugin), for an Airflow that has ``include/`` on its path, not installed.

An installed ``ativo`` registers the plugin through its ``airflow.plugins`` entry point, which Airflow loads after
this folder: were the class named here too, Airflow would skip the second one and list it as a plugin import error
("Plugin 'ativo_plugin' already registered"). So this file names the class only where that entry point is absent.
"""

from __future__ import annotations

from importlib.metadata import entry_points

if not any(ep.value.startswith("ativo.airflow.plugin:") for ep in entry_points(group="airflow.plugins")):
    from ativo.airflow.plugin import AtivoPlugin

    __all__ = ["AtivoPlugin"]
