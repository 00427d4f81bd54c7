"""A trial's log links to its own MLflow run (MLflow's own per-run link lands on its empty GenAI overview)."""

from __future__ import annotations

from ativo.train.search import _run_link


def test_a_tracking_server_gets_a_link_to_the_run_page(settings):
    live = settings.model_copy(update={"mlflow_tracking_uri": "http://127.0.0.1:5000/"})
    assert _run_link(live, "3", "abc123") == "http://127.0.0.1:5000/#/experiments/3/runs/abc123"


def test_a_local_store_says_there_is_no_ui_instead_of_a_dead_link(settings):
    local = settings.model_copy(update={"mlflow_tracking_uri": "sqlite:////tmp/x/mlflow.db"})
    said = _run_link(local, "3", "abc123")
    assert "abc123" in said and "http" not in said and "/tmp/x" not in said
