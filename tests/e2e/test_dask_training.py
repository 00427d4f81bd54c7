"""``compute.engine: dask``: a spec trains with ``xgboost.dask`` on a ``LocalCluster`` through the real train DAG
(dag.test()), is judged on a bounded seeded sample, deployed and served like any other model.

The spec is the loan book of :mod:`tests.e2e.test_new_dataset` (in :mod:`tests.support.scenarios`) with
``compute: {engine: dask}`` and a small ``sample_rows``, so the gates provably judge a sample and not every row.
"""

from __future__ import annotations

import pytest

from tests.support.scenarios import (
    LOANS_SPEC,
    day_files,
    lifecycle,
    loan_book,
    predict_loan,
    specs_dir_fixture,  # noqa: F401  # the fixture specs_dir
)

DASK_SPEC = LOANS_SPEC.replace(
    "compute: {team: credit}",
    "compute: {team: credit, engine: dask, dask: {workers: 2, threads_per_worker: 1, memory_limit: 1GiB,"
    " sample_rows: 1000}}",
)


@pytest.fixture
def dask_specs(specs_dir, monkeypatch):
    """The new-dataset test's specs directory, with no standing scheduler named: the task starts a LocalCluster."""
    monkeypatch.delenv("ATIVO_DASK_SCHEDULER", raising=False)
    yield specs_dir
    from ativo.compute.cluster import close_clients

    close_clients()


def test_a_dask_spec_trains_on_a_local_cluster_through_the_train_dag_and_is_served(
    airflow_db, settings, dask_specs, tmp_path, monkeypatch
):
    assert "engine: dask" in DASK_SPEC
    (dask_specs / "loan_default.yaml").write_text(DASK_SPEC)
    book = loan_book()
    done = lifecycle("loan_default", day_files(book, tmp_path, "loans"), settings, monkeypatch)
    server = done["server"]
    try:
        from mlflow import MlflowClient

        from ativo.compute import cluster as dask_cluster

        # the trials trained on the cluster: their runs say so, and this process started the LocalCluster
        client = MlflowClient(settings.mlflow_tracking_uri)
        mv = client.get_model_version("loan_default", done["version"])
        best = client.get_run(mv.run_id)
        assert best.data.tags["ativo.engine"] == "dask"
        assert best.data.metrics["test_auc"] > 0.7
        parent = client.get_run(mv.tags["ativo.parent_run_id"])
        assert parent.data.params["engine"] == "dask"
        assert int(parent.data.params["train_rows"]) > 2500  # every training row, not the sample
        assert parent.data.params["dataset_input_sample_rows"] == "1000"
        [cluster] = dask_cluster._CLUSTERS.values()
        assert len(cluster.workers) == 2
        # the gates judged a seeded sample, at most sample_rows of each split, and the report says of how many
        held = done["report"]["evaluated_on"]
        assert held["sample"] is True and held["engine"] == "dask" and held["sample_rows"] == 1000
        assert held["rows"]["train"] == 1000 < held["of"]["train"]
        assert held["rows"]["test"] == held["of"]["test"] > 500  # a split smaller than the bound is kept whole
        assert sum(held["of"].values()) == len(book)
        # the registered booster serves as any other
        answer = predict_loan(server)
        assert answer["version"] == done["version"] and answer["label"] == "yes"
    finally:
        server.stop()
