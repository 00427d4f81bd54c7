"""A deployment names the run that made it: a deploy DAG run's promotion record (signed row and record for people)
holds its dag_id and run_id, and the lineage links the deployment to that run in Airflow's grid; a move from
outside Airflow (``ativo promote``) names none and its actor says who."""

from __future__ import annotations

from urllib.parse import quote

from tests.e2e.test_etl_and_training import states
from tests.support.harness import register_booster, start_server
from tests.unit.test_ativo_reports import chain


def test_a_deploy_dag_run_is_named_by_the_records_it_writes(
    airflow_db, settings, spec, small_boosters, tmp_path, monkeypatch
):
    from ativo.airflow.dags.deploy import build_deploy_dag
    from ativo.deploy import promotion
    from ativo.model import registry
    from ativo.ops import lineage, views

    v1, v2 = (
        register_booster(settings, spec, small_boosters[name], artifact_root=tmp_path / "art")
        for name in ("good", "good2")
    )
    server = start_server(settings, args=("--refresh-s", "0.2"), wait_for=None)  # nothing to serve yet
    monkeypatch.setenv("ATIVO_SERVE_URLS", server.url)
    dag = build_deploy_dag(spec)
    try:  # the first version: straight to champion (no trial to watch), once the server serves it
        run = dag.test(run_conf={"version": v1})
    finally:
        server.stop()
    assert str(run.state) == "success", states(run)
    made = {"dag_id": dag.dag_id, "run_id": run.run_id}

    [signed] = registry.history(spec, settings)
    assert (signed["action"], signed["valid"], signed["dag_run"]) == ("promote", True, made)
    [for_people] = promotion.history(spec, settings)
    assert for_people["dag_run"] == made and for_people["actor"] == signed["actor"]

    # the CLI's promote (`ativo promote`): no run to name, the actor says who
    promotion.promote(spec, settings, v2, reason="by hand", actor="key:ops")
    cli = registry.history(spec, settings)[-1]
    assert (cli["action"], cli["actor"], cli["dag_run"]) == ("promote", "key:ops", None)
    assert promotion.history(spec, settings)[-1]["dag_run"] is None

    # the lineage of a decision v1 made: its deployment links to that run in Airflow's grid
    deployments = lineage.deployments_of(spec, settings, v1)
    tree = views.lineage_tree(settings, {**chain(), "deployments": deployments})
    links = {link["label"]: link["href"] for node in tree if node["kind"] == "model" for link in node["links"]}
    grid = views.dag_run_url(settings.link_url, dag.dag_id, run.run_id)
    assert links[f"deploy DAG run: promote {for_people['at']}"] == grid
    assert grid.endswith(f"/dags/{dag.dag_id}/runs/{quote(run.run_id, safe='')}")
    assert f"(DAG run {dag.dag_id} {run.run_id})" in lineage.render({**chain(), "deployments": deployments})
