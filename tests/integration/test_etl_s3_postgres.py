"""The ETL DAG against a real S3 endpoint (lake, landing, quarantine, DVC remote) and the platform DB on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
START = dt.date(2026, 5, 1)


@pytest.fixture
def s3_settings(ativo_home, s3_endpoint, s3_bucket, postgres_url, monkeypatch):
    bucket, _ = s3_bucket
    monkeypatch.setenv("ATIVO_STORE_URI", f"s3://{bucket}/ativo")
    monkeypatch.setenv("ATIVO_S3_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("ATIVO_DVC_REMOTE", f"s3://{bucket}/dvc")
    monkeypatch.setenv("ATIVO_DB_URL", postgres_url)
    from ativo.config import load_settings

    return load_settings()


def test_etl_dag_on_s3_and_postgres(airflow_db, s3_settings, s3_bucket, spec, reference_dir):
    from airflow.dag_processing.dagbag import DagBag

    from ativo.data.landing import simulate
    from ativo.store.db import dataset_versions, quarantined_batches, subject_index
    from ativo.store.objects import open_store

    bucket, s3 = s3_bucket
    store = open_store(s3_settings)
    days = [START + dt.timedelta(days=i) for i in range(3)]
    simulate(spec, store, reference_dir, START, 3, malformed={days[1]: "duplicate_ids"})
    etl = DagBag(dag_folder=str(ROOT / "dags")).dags["adult_income__etl"]
    runs = [
        etl.test(logical_date=dt.datetime.combine(d + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)) for d in days
    ]
    assert [str(r.state) for r in runs] == ["success", "failed", "success"]

    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert {f"ativo/lake/adult_income/ds={d}/part-0.parquet" for d in (days[0], days[2])} <= keys
    assert not any(k.startswith(f"ativo/lake/adult_income/ds={days[1]}") for k in keys)
    assert any(k.startswith(f"ativo/quarantine/adult_income/{days[1]}/") and k.endswith("report.json") for k in keys)
    assert any(k.startswith("dvc/files/md5/") for k in keys), "dataset objects pushed to the S3 DVC remote"

    engine = create_engine(s3_settings.db_url)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(subject_index)).scalar() > 3000
        tags = conn.execute(select(dataset_versions.c.tag).order_by(dataset_versions.c.version)).scalars().all()
        assert tags == ["adult_income-v0001", "adult_income-v0002"]
        [reasons] = conn.execute(select(quarantined_batches.c.reasons)).scalars().all()
        assert any("duplicated value" in r for r in reasons)
    engine.dispose()

    # the newest version reads back through DVC from the S3 remote even with the local cache gone
    import shutil

    from ativo.data.versioning import open_registry
    from ativo.store.db import get_engine

    shutil.rmtree(s3_settings.registry_path / ".dvc" / "cache")
    reg = open_registry(s3_settings)
    version = reg.resolve(get_engine(s3_settings.db_url), "adult_income")
    assert len(reg.read(version)) == version.rows


def _acquire_index(url: str, part: str) -> int:
    from ativo.data.subjects import index_partitions
    from ativo.store.db import get_engine

    return index_partitions(get_engine(url), "spec", {part: [f"s{i}" for i in range(200)]}, {})[part]


def test_subject_index_concurrent_writers_on_postgres(postgres_url):
    from ativo.data.subjects import partitions_of
    from ativo.store.db import get_engine

    parts = [f"2026-06-{d:02d}" for d in range(1, 9)] * 2  # every partition written twice, concurrently
    with mp.get_context("spawn").Pool(4) as pool:
        assert set(pool.starmap(_acquire_index, [(postgres_url, p) for p in parts])) == {200}
    assert partitions_of(get_engine(postgres_url), "spec", "s7") == sorted(set(parts))


def test_gpu_leases_never_shared_on_postgres(postgres_url):
    from tests.component.test_leases import assert_never_shared, run_contention

    intervals = run_contention(postgres_url)
    assert len(intervals) == 16
    assert_never_shared(intervals)


def test_sigkilled_holder_loses_lease_and_reservation_on_postgres(postgres_url, ativo_home, spec, monkeypatch):
    from tests.component.test_compute_session import PRICES, check_sigkilled_holder_expires

    monkeypatch.setenv("ATIVO_PRICES", PRICES)
    monkeypatch.setenv("ATIVO_DB_URL", postgres_url)
    check_sigkilled_holder_expires(spec, str(ativo_home), postgres_url)
