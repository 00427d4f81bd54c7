"""A standing Dask cluster, as `make run DASK=1` starts it (a ``dask scheduler`` and ``dask worker`` processes):
``ATIVO_DASK_SCHEDULER`` points training at it, and its workers read the Parquet partitions themselves.
"""

from __future__ import annotations

import socket

import numpy as np
import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    from ativo.compute.cluster import close_clients
    from ativo.config import load_settings
    from ativo_dev import supervisor

    monkeypatch.setenv("ATIVO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ATIVO_DASK_PORT", str(_free_port()))
    settings = load_settings()
    address = supervisor.start_dask(settings, supervisor.platform_env(settings), workers=2, memory_limit="1GiB")
    monkeypatch.setenv("ATIVO_DASK_SCHEDULER", address)
    try:
        yield load_settings()
    finally:
        close_clients()
        stopped = supervisor.stop_services(settings)
        assert set(stopped) == {"dask-scheduler", "dask-workers"}


def test_training_uses_the_scheduler_in_settings_and_its_workers_read_the_partitions(
    cluster, spec, adult_split, tmp_path
):
    import pandas as pd

    from ativo.compute import cluster as dask_cluster
    from ativo.data.split import lazy_split
    from ativo.data.training import parquet_frame
    from ativo.train.distributed import fit_dask

    frame = pd.concat([adult_split.train, adult_split.valid, adult_split.test], ignore_index=True)
    files = []
    for i, part in enumerate(np.array_split(np.arange(len(frame)), 4)):
        files.append(tmp_path / f"part-{i}.parquet")
        frame.iloc[part].to_parquet(files[-1], index=False)
    model_spec = spec.model_copy(
        update={
            "model": spec.model.model_copy(update={"num_boost_round": 60}),
            "compute": spec.compute.model_copy(update={"engine": "dask"}),
        }
    )
    from distributed import get_task_stream

    lazy, rows = parquet_frame([(str(f), {}) for f in files], label="test-parquet")
    assert rows == len(frame) and lazy.npartitions == 4
    client = dask_cluster.client_for(model_spec, cluster)
    assert client.scheduler.address == cluster.dask_scheduler  # the standing cluster, no LocalCluster
    assert not dask_cluster._CLUSTERS
    client.wait_for_workers(2, timeout=60)
    with get_task_stream(client) as stream:
        model = fit_dask(model_spec, cluster, lazy_split(lazy, model_spec, rows))
    # both workers read and trained (reading is fused into the tasks that split and encode each partition): the
    # data never went through this process
    assert {t["worker"] for t in stream.data} == set(client.scheduler_info()["workers"])
    assert model.metrics["test_auc"] > 0.9 and model.booster.num_boosted_rounds() <= 60
    assert len(model.curve or ()) == model.booster.num_boosted_rounds()
