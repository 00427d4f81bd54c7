"""A dask spec on an install without the dask extra fails saying which extra to install."""

from __future__ import annotations

import sys

import pytest

from ativo.compute.cluster import DaskTrainingError, require_dask
from ativo.data.training import parquet_frame


def test_missing_distributed_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # what find_spec reports for a package not installed
    with pytest.raises(DaskTrainingError, match=r"needs distributed, .*pip install 'ativo\[dask\]'"):
        require_dask()


def test_reading_a_dataset_as_a_dask_frame_checks_first(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask", None)
    with pytest.raises(DaskTrainingError, match=r"needs dask, "):
        parquet_frame([("file:///nowhere.parquet", {})])


def test_installed_dask_passes():
    require_dask()
