from __future__ import annotations

import subprocess
from pathlib import Path

from ativo.data.versioning import DatasetRegistry
from ativo.store.db import get_engine
from ativo.store.objects import ObjectStore
from ativo.store.prefixes import lake_partition
from tests.support import processes


def _write(store: ObjectStore, day: str, payload: bytes) -> None:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.table({"record_id": [day], "payload": [payload.decode()]}), buf)
    store.put_bytes(lake_partition("demo", day), buf.getvalue())


def test_versions_are_created_only_when_the_lake_changes(tmp_path):
    store, engine = ObjectStore((tmp_path / "store").as_uri()), get_engine(f"sqlite:///{tmp_path / 'p.db'}")
    reg = DatasetRegistry(tmp_path / "registry", str(tmp_path / "remote"))
    _write(store, "2026-01-01", b"a")
    v1 = reg.commit("demo", store, engine)
    assert (v1.tag, v1.created, v1.rows, v1.partitions) == ("demo-v0001", True, 1, ["2026-01-01"])
    again = reg.commit("demo", store, engine)
    assert (again.tag, again.created) == ("demo-v0001", False)
    _write(store, "2026-01-02", b"b")
    v2 = reg.commit("demo", store, engine)
    assert (v2.tag, v2.created, v2.rows) == ("demo-v0002", True, 2)
    assert v2.manifest_hash != v1.manifest_hash
    # the old version still reads exactly as it was, through DVC at its git revision
    assert reg.read(reg.resolve(engine, "demo", "demo-v0001"))["record_id"].tolist() == ["2026-01-01"]
    assert reg.resolve(engine, "demo").tag == "demo-v0002"
    assert any((tmp_path / "remote").rglob("*")), "objects were pushed to the DVC remote"


def _commit_one(root: str, day: str) -> str:
    root_path = Path(root)
    store = ObjectStore((root_path / "store").as_uri())
    _write(store, day, day.encode())
    reg = DatasetRegistry(root_path / "registry", str(root_path / "remote"))
    return reg.commit("demo", store, get_engine(f"sqlite:///{root_path / 'p.db'}")).tag


def test_concurrent_commits_never_corrupt_the_registry(tmp_path):
    days = [f"2026-02-{d:02d}" for d in range(1, 9)]
    # four processes of their own, forked from a server that imported the registry and DVC once
    with processes.context().Pool(4) as pool:
        tags = pool.starmap(_commit_one, [(str(tmp_path), d) for d in days])
    registry = tmp_path / "registry"
    fsck = subprocess.run(["git", "-C", str(registry), "fsck", "--strict"], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stderr
    status = subprocess.run(["git", "-C", str(registry), "status", "--porcelain"], capture_output=True, text=True)
    assert status.stdout.strip() == ""
    reg = DatasetRegistry(registry, str(tmp_path / "remote"))
    engine = get_engine(f"sqlite:///{tmp_path / 'p.db'}")
    latest = reg.resolve(engine, "demo")
    assert latest.rows == len(days)  # the newest version holds every partition
    assert sorted(reg.read(latest)["record_id"]) == days
    created = sorted(set(tags))
    assert created == sorted(f"demo-v{i:04d}" for i in range(1, len(created) + 1))  # numbering has no gaps
