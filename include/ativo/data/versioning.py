"""Dataset versions with DVC over a git data registry.

The registry is a git repository (under ``var/`` in the embedded default) whose working copy mirrors each
spec's lake; ``dvc add`` snapshots it, the objects are pushed to the DVC remote (a local directory or S3), and
the ``.dvc`` file is committed and tagged ``<spec>-v<NNNN>``. A snapshot identical to the last one creates no
new version. Every operation holds an exclusive file lock, so concurrent ETL runs (a backfill with several
active runs) serialise here instead of corrupting the repository.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import logging
import os
import re
import subprocess
from collections.abc import Collection, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from sqlalchemy import Engine, func, insert, select

from ativo.errors import DatasetVersionError
from ativo.store import prefixes
from ativo.store.db import dataset_redactions, dataset_versions, utcnow
from ativo.store.objects import ObjectStore

if TYPE_CHECKING:
    import pandas as pd

    from ativo.config import Settings

log = logging.getLogger(__name__)

_GIT_IDENTITY = ["-c", "user.name=Ativo", "-c", "user.email=ativo@localhost", "-c", "commit.gpgsign=false"]


@dataclass(frozen=True)
class DatasetVersion:
    """One tagged snapshot of a spec's lake."""

    spec: str
    version: int
    tag: str
    git_rev: str
    manifest_hash: str
    rows: int
    partitions: list[str]
    created: bool = False
    recorded_at: dt.datetime | None = field(default=None, compare=False)
    """When the platform DB recorded it (set on what :func:`versions_of` and :func:`latest_versions` read)."""

    def event_extra(self) -> dict[str, Any]:
        """What the features Asset event carries (JSON-serialisable)."""
        extra = asdict(self)
        extra.pop("recorded_at")
        extra["dataset"] = extra.pop("spec")
        extra["partition_count"] = len(self.partitions)
        extra.pop("partitions")
        return extra


def _version(row: Any) -> DatasetVersion:
    return DatasetVersion(
        spec=row["spec"],
        version=row["version"],
        tag=row["tag"],
        git_rev=row["git_rev"],
        manifest_hash=row["manifest_hash"],
        rows=row["rows"],
        partitions=list(row["partitions"]),
        recorded_at=row["created_at"],
    )


def versions_of(engine: Engine, spec: str) -> list[DatasetVersion]:
    """Every recorded dataset version of ``spec``, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(dataset_versions).where(dataset_versions.c.spec == spec).order_by(dataset_versions.c.version)
        ).mappings()
        return [_version(r) for r in rows]


def recorded_version(engine: Engine, spec: str, tag: str | None = None) -> DatasetVersion | None:
    """The recorded dataset version ``tag`` of ``spec``, or its latest when ``tag`` is None (None: there is none)."""
    with engine.connect() as conn:
        q = select(dataset_versions).where(dataset_versions.c.spec == spec)
        q = q.where(dataset_versions.c.tag == tag) if tag else q.order_by(dataset_versions.c.version.desc())
        row = conn.execute(q.limit(1)).mappings().first()
    return None if row is None else _version(row)


def latest_versions(engine: Engine) -> dict[str, DatasetVersion]:
    """Per spec: its latest recorded dataset version (specs without one are left out)."""
    with engine.connect() as conn:
        newest = (
            select(dataset_versions.c.spec, func.max(dataset_versions.c.version).label("version"))
            .group_by(dataset_versions.c.spec)
            .subquery()
        )
        rows = conn.execute(
            select(dataset_versions)
            .join(
                newest,
                (dataset_versions.c.spec == newest.c.spec) & (dataset_versions.c.version == newest.c.version),
            )
            .order_by(dataset_versions.c.spec)
        ).mappings()
        return {r["spec"]: _version(r) for r in rows}


@dataclass(frozen=True)
class Redaction:
    """One entry of the redaction map: a DVC object, and the copy of it without an erasure batch's rows."""

    spec: str
    old_md5: str
    new_md5: str
    rows_removed: int
    batch_id: int
    created_at: dt.datetime


def record_redaction(
    engine: Engine, *, spec: str, old_md5: str, new_md5: str, rows_removed: int, batch_id: int
) -> bool:
    """Map ``old_md5`` to its redacted copy ``new_md5`` (one transaction); an object already mapped keeps its entry.

    Returns:
        Whether the entry was added (False: ``old_md5`` was mapped already, by this batch's earlier try or another).
    """
    with engine.begin() as conn:
        exists = conn.execute(
            select(dataset_redactions.c.new_md5).where(
                dataset_redactions.c.spec == spec, dataset_redactions.c.old_md5 == old_md5
            )
        ).first()
        if exists is not None:
            return False
        conn.execute(
            insert(dataset_redactions).values(
                spec=spec,
                old_md5=old_md5,
                new_md5=new_md5,
                rows_removed=rows_removed,
                batch_id=batch_id,
                created_at=utcnow(),
            )
        )
    return True


def redactions_of(engine: Engine, spec: str, batch_id: int) -> list[Redaction]:
    """The redaction map entries erasure batch ``batch_id`` added for ``spec``, by old md5."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(dataset_redactions)
            .where(dataset_redactions.c.spec == spec, dataset_redactions.c.batch_id == batch_id)
            .order_by(dataset_redactions.c.old_md5)
        ).mappings()
        return [Redaction(**r) for r in rows]


def redaction_map(engine: Engine) -> dict[str, tuple[str, int]]:
    """The whole redaction map: old md5 → (redacted md5, rows removed)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(dataset_redactions.c.old_md5, dataset_redactions.c.new_md5, dataset_redactions.c.rows_removed)
        )
        return {r[0]: (r[1], int(r[2])) for r in rows}


class DatasetRegistry:
    """The git + DVC data registry.

    Args:
        path: working copy of the registry (created on first use).
        remote: DVC remote: a directory path or ``s3://bucket/prefix``.
        s3_endpoint_url: endpoint for an S3-compatible remote.
    """

    def __init__(
        self, path: Path, remote: str, s3_endpoint_url: str | None = None, engine: Engine | None = None
    ) -> None:
        self.path = Path(path)
        self.remote = remote
        self.s3_endpoint_url = s3_endpoint_url
        self.engine = engine  # where the redaction map is (erasure); None reads objects as DVC stored them
        self.lock_path = self.path.parent / f".{self.path.name}.lock"

    # -- plumbing -------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self, shared: bool = False) -> Iterator[None]:
        """Hold the registry lock (exclusive for writers, shared for readers)."""
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _git(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run(
            ["git", *_GIT_IDENTITY, "-C", str(self.path), *args], capture_output=True, text=True, check=False
        )
        if check and proc.returncode != 0:
            raise DatasetVersionError(f"git {' '.join(args)} failed in {self.path}: {proc.stderr.strip()}")
        return proc.stdout.strip()

    def _repo(self) -> Any:
        from dvc.repo import Repo

        logging.getLogger("dvc").setLevel(logging.WARNING)  # DVC's "run git add" hints are for humans at a shell

        return Repo(str(self.path))

    def _configure_remote(self) -> None:
        repo = self._repo()
        try:
            with repo.config.edit("local") as conf:
                remote: dict[str, Any] = {"url": self.remote}
                if self.remote.startswith("s3://") and self.s3_endpoint_url:
                    remote["endpointurl"] = self.s3_endpoint_url
                conf["remote"]["storage"] = remote
                conf["core"]["remote"] = "storage"
        finally:
            repo.close()

    def _ensure(self) -> None:
        if not (self.path / ".dvc").exists():
            from dvc.repo import Repo

            self.path.mkdir(parents=True, exist_ok=True)
            if not (self.path / ".git").exists():
                self._git("init", "--quiet", "--initial-branch=main")
            repo = Repo.init(str(self.path))
            try:
                with repo.config.edit("repo") as conf:
                    conf["core"]["analytics"] = False
                    conf["core"]["autostage"] = False
            finally:
                repo.close()
            (self.path / "datasets").mkdir(exist_ok=True)
            (self.path / "README.md").write_text(
                "# Ativo data registry\n\nOne DVC-tracked directory per model spec under `datasets/`; "
                "each dataset version is a git tag `<spec>-vNNNN`.\n"
            )
            self._git("add", "-A")
            self._git("commit", "--quiet", "-m", "registry initialised")
        self._configure_remote()

    # -- versions -------------------------------------------------------------------------------------------
    def _tags(self, spec: str) -> list[tuple[int, str]]:
        out = self._git("tag", "--list", f"{spec}-v*")
        tags = []
        for tag in out.splitlines():
            m = re.fullmatch(rf"{re.escape(spec)}-v(\d+)", tag.strip())
            if m:
                tags.append((int(m.group(1)), tag.strip()))
        return sorted(tags)

    def _sync_workspace(self, spec: str, store: ObjectStore) -> dict[str, int]:
        import pyarrow.parquet as pq

        workspace = self.path / "datasets" / spec
        workspace.mkdir(parents=True, exist_ok=True)
        wanted: dict[str, int] = {}
        seen_files = set()
        for key in store.list(prefixes.lake(spec)):
            partition = prefixes.lake_partition_of(key)
            if partition is None:
                continue
            rel = prefixes.lake_relpath(partition)
            data = store.get_bytes(key)
            target = workspace / rel
            if not target.exists() or target.read_bytes() != data:
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_name(target.name + ".tmp")
                tmp.write_bytes(data)
                os.replace(tmp, target)
            wanted[partition] = pq.read_metadata(target).num_rows
            seen_files.add(target)
        for f in workspace.rglob("*.parquet"):
            if f not in seen_files:
                f.unlink()
        for d in sorted(workspace.glob("ds=*"), reverse=True):
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()
        return dict(sorted(wanted.items()))

    def _manifest_hash(self, spec: str, rev: str | None = None) -> str:
        dvc_file = f"datasets/{spec}.dvc"
        text = self._git("show", f"{rev}:{dvc_file}") if rev else (self.path / dvc_file).read_text()
        meta = yaml.safe_load(text)
        return str(meta["outs"][0]["md5"])

    def commit(self, spec: str, store: ObjectStore, engine: Engine) -> DatasetVersion:
        """Snapshot the spec's lake as a new dataset version, or return the current one if nothing changed.

        Raises:
            DatasetVersionError: the lake is empty, or git/DVC failed (the registry is left as it was).
        """
        with self.locked():
            self._ensure()
            partitions = self._sync_workspace(spec, store)
            if not partitions:
                raise DatasetVersionError(f"the lake of {spec!r} has no partitions to version")
            repo = self._repo()
            try:
                # DVC resolves targets against the process's cwd: always pass absolute paths.
                repo.add([str(self.path / "datasets" / spec)])
                repo.push(targets=[str(self.path / "datasets" / f"{spec}.dvc")])
            except Exception as err:
                self._git("checkout", "--", ".", check=False)
                raise DatasetVersionError(f"dvc add/push of datasets/{spec} failed: {err}") from err
            finally:
                repo.close()
            changed = self._git("status", "--porcelain", "--", f"datasets/{spec}.dvc", "datasets/.gitignore")
            tags = self._tags(spec)
            if not changed and tags:
                number, tag = tags[-1]
                return self._record(engine, spec, number, tag, partitions, created=False)
            number = (tags[-1][0] + 1) if tags else 1
            tag = f"{spec}-v{number:04d}"
            rows = sum(partitions.values())
            self._git("add", "--", f"datasets/{spec}.dvc", "datasets/.gitignore")
            self._git(
                "commit",
                "--quiet",
                "-m",
                f"{spec}: dataset v{number:04d} ({len(partitions)} partitions, {rows} rows)",
            )
            self._git("tag", tag)
            log.info("dataset %s created: %d partitions, %d rows", tag, len(partitions), rows)
            return self._record(engine, spec, number, tag, partitions, created=True)

    def _record(
        self, engine: Engine, spec: str, number: int, tag: str, partitions: dict[str, int], created: bool
    ) -> DatasetVersion:
        rev = self._git("rev-list", "-n", "1", tag)
        version = DatasetVersion(
            spec=spec,
            version=number,
            tag=tag,
            git_rev=rev,
            manifest_hash=self._manifest_hash(spec, rev),
            rows=sum(partitions.values()),
            partitions=list(partitions),
            created=created,
        )
        with engine.begin() as conn:
            exists = conn.execute(select(dataset_versions.c.tag).where(dataset_versions.c.tag == tag)).first()
            if not exists:
                conn.execute(
                    insert(dataset_versions).values(
                        spec=spec,
                        version=number,
                        tag=tag,
                        git_rev=rev,
                        manifest_hash=version.manifest_hash,
                        rows=version.rows,
                        partitions=version.partitions,
                        created_at=utcnow(),
                    )
                )
        return version

    def resolve(self, engine: Engine, spec: str, tag: str | None = None) -> DatasetVersion:
        """A recorded dataset version: ``tag``, or the latest when None.

        Raises:
            DatasetVersionError: no such version.
        """
        found = recorded_version(engine, spec, tag)
        if found is None:
            what = f"version {tag!r}" if tag else "any version"
            raise DatasetVersionError(f"dataset {spec!r} has no {what}; run the ETL DAG first")
        return found

    # -- objects: what DVC stored, and the redaction map over it ---------------------------------------------
    def _cache_path(self, md5: str) -> Path:
        return self.path / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]

    def _remote_fs(self) -> tuple[Any, str]:
        import fsspec

        if self.remote.startswith("s3://"):
            opts: dict[str, Any] = {
                "skip_instance_cache": True,
                "config_kwargs": {"retries": {"max_attempts": 5, "mode": "standard"}},
            }
            if self.s3_endpoint_url:
                opts["client_kwargs"] = {"endpoint_url": self.s3_endpoint_url}
            return fsspec.filesystem("s3", **opts), self.remote.removeprefix("s3://").rstrip("/")
        return fsspec.filesystem("file"), str(Path(self.remote).resolve())

    def _remote_path(self, md5: str) -> str:
        _, root = self._remote_fs()
        return f"{root}/files/md5/{md5[:2]}/{md5[2:]}"

    def object_locations(self, md5: str) -> list[str]:
        """Where DVC keeps the object ``md5``: its cache file and its remote object (those that exist)."""
        fs, _ = self._remote_fs()
        out = [str(p) for p in [self._cache_path(md5)] if p.exists()]
        remote = self._remote_path(md5)
        if fs.exists(remote):
            out.append(("s3://" if self.remote.startswith("s3://") else "") + remote)
        return out

    def object_source(self, md5: str) -> tuple[str, dict[str, Any]]:
        """Where another process, on this host or another, reads the object ``md5``: (fsspec URL, storage options).

        An S3 remote is readable from every host of a cluster, so it is named whenever the remote is S3; else the
        cache file (or the local remote's file) is.
        """
        if self.remote.startswith("s3://"):
            opts: dict[str, Any] = {"config_kwargs": {"retries": {"max_attempts": 5, "mode": "standard"}}}
            if self.s3_endpoint_url:
                opts["client_kwargs"] = {"endpoint_url": self.s3_endpoint_url}
            return "s3://" + self._remote_path(md5), opts
        path = self._cache_path(md5)
        return (str(path) if path.exists() else self._remote_path(md5)), {}

    def get_object(self, md5: str) -> bytes:
        """An object's bytes: the cache, else the remote.

        Raises:
            DatasetVersionError: neither has it.
        """
        path = self._cache_path(md5)
        if path.exists():
            return path.read_bytes()
        fs, _ = self._remote_fs()
        try:
            data: bytes = fs.cat_file(self._remote_path(md5))
        except FileNotFoundError:
            raise DatasetVersionError(
                f"DVC object {md5} is in neither the cache nor the remote {self.remote}"
            ) from None
        return data

    def put_object(self, data: bytes) -> str:
        """Store bytes as a DVC object in the cache and the remote (each written whole, then renamed); its md5."""
        import hashlib

        md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
        path = self._cache_path(md5)
        if not path.exists() or path.read_bytes() != data:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        fs, _ = self._remote_fs()
        remote = self._remote_path(md5)
        if not fs.exists(remote):
            if self.remote.startswith("s3://"):
                fs.pipe_file(remote, data)  # an S3 PUT is atomic
            else:
                Path(remote).parent.mkdir(parents=True, exist_ok=True)
                tmp = Path(f"{remote}.tmp-{os.getpid()}")
                tmp.write_bytes(data)
                os.replace(tmp, remote)
        return md5

    def delete_object(self, md5: str) -> list[str]:
        """Remove an object from the cache and the remote; returns where it was removed from."""
        gone = self.object_locations(md5)
        path = self._cache_path(md5)
        if path.exists():
            path.unlink()
        fs, _ = self._remote_fs()
        remote = self._remote_path(md5)
        if fs.exists(remote):
            fs.rm_file(remote)
        return gone

    def manifest(self, version: DatasetVersion) -> list[tuple[str, str]]:
        """(path below the dataset directory, DVC object md5) of each file of a version, as DVC recorded it."""
        import json

        dir_md5 = self._manifest_hash(version.spec, version.git_rev)
        entries = json.loads(self.get_object(dir_md5))
        return sorted((str(e["relpath"]), str(e["md5"])) for e in entries)

    def redactions(self) -> dict[str, tuple[str, int]]:
        """The redaction map of this spec's objects: old md5 → (redacted md5, rows removed)."""
        if self.engine is None:
            return {}
        return redaction_map(self.engine)

    def resolved(
        self, version: DatasetVersion, mapping: dict[str, tuple[str, int]] | None = None
    ) -> list[tuple[str, str, int]]:
        """(path, md5 to read, rows erased from it) per file of a version, through the redaction map.

        An object redacted twice (two erasures) resolves through both. ``mapping``: the map read already (by a caller
        resolving several versions), else it is read now.
        """
        if mapping is None:
            mapping = self.redactions()
        out = []
        for rel, md5 in self.manifest(version):
            removed, seen = 0, set()
            while md5 in mapping and md5 not in seen:
                seen.add(md5)
                md5, n = mapping[md5]
                removed += n
            out.append((rel, md5, removed))
        return out

    def read_key(self, version: DatasetVersion) -> str:
        """A key for what a version reads as now (after an erasure, its redacted objects): for caches of its rows."""
        import hashlib

        resolved = self.resolved(version)
        redacted = any(n for _, _, n in resolved)
        suffix = "-r" + hashlib.sha256(repr(resolved).encode()).hexdigest()[:16] if redacted else ""
        return f"{version.manifest_hash.removesuffix('.dir')}{suffix}"

    def read(self, version: DatasetVersion) -> pd.DataFrame:
        """The rows of a dataset version at its git revision (DVC cache, else remote), through the redaction map.

        A version an erasure touched reads back with every other subject's rows and none of the erased ones'.
        """
        import io

        import pandas as pd
        import pyarrow.parquet as pq

        with self.locked(shared=True):
            files = [f for f in self.resolved(version) if f[0].endswith(".parquet")]
            frames = [pq.read_table(io.BytesIO(self.get_object(md5))).to_pandas() for _, md5, _ in files]
        if not frames:
            raise DatasetVersionError(f"dataset {version.tag} has no partitions")
        df = pd.concat(frames, ignore_index=True)
        expected = version.rows - sum(n for _, _, n in files)
        if len(df) != expected:
            raise DatasetVersionError(
                f"dataset {version.tag}: read {len(df)} rows, the version records {expected}"
                + (f" ({version.rows} less {version.rows - expected} erased)" if expected != version.rows else "")
            )
        return df

    # -- erasure: every version forgets a subject -------------------------------------------------------------
    def holding(
        self, engine: Engine, spec: str, subject: str, record_id: str, subjects: Collection[str]
    ) -> ObjectsHeld:
        """Every DVC object of every version of ``spec`` (read through the redaction map) holding ``subjects``.

        Args:
            engine: the platform DB (the recorded versions).
            spec: the spec's name.
            subject: the subject column.
            record_id: the record id column.
            subjects: the subject ids looked for.
        """
        wanted = set(subjects)
        seen: dict[str, int] = {}
        out = ObjectsHeld()
        mapping = self.redactions()  # once: every version resolves through the same map
        for version in versions_of(engine, spec):
            for rel, md5, _ in self.resolved(version, mapping):
                if not rel.endswith(".parquet"):
                    continue
                if md5 not in seen:
                    n, found, records = _rows_of(self.get_object(md5), subject, record_id, wanted)
                    seen[md5] = n
                    out.found |= found
                    out.ids |= records
                    if n:
                        out.objects[md5] = HeldObject(rel, n, [])
                if seen[md5]:
                    out.objects[md5].versions.append(version.tag)
        return out

    def forget(
        self, engine: Engine, spec: str, subject: str, record_id: str, subjects: Collection[str], batch_id: int
    ) -> ObjectsRedacted:
        """Every version of ``spec`` forgets ``subjects``: a redacted copy of each object holding them, mapped.

        Each copy (the object without their rows, by the lake's writer) is stored whole in the cache and the remote
        before the redaction map names it (one transaction per object), so every version reads back without their
        rows and with every other row. The old objects stay until :meth:`drop_redacted`. A second call finds no
        object holding them (the map is read through) and changes nothing.

        Returns:
            The objects redacted (old md5 → the copy), the subjects found and the record ids of their rows.
        """
        from ativo.data.features import read_parquet_bytes, to_parquet_bytes

        held = self.holding(engine, spec, subject, record_id, subjects)
        out = ObjectsRedacted(found=held.found, ids=held.ids)
        wanted = set(subjects)
        for old, info in sorted(held.objects.items()):
            frame = read_parquet_bytes(self.get_object(old))
            gone = frame[subject].astype(str).isin(wanted)
            new = self.put_object(to_parquet_bytes(frame[~gone].reset_index(drop=True)))
            removed = int(gone.sum())
            record_redaction(engine, spec=spec, old_md5=old, new_md5=new, rows_removed=removed, batch_id=batch_id)
            out.objects[old] = RedactedObject(new, removed, info.relpath, info.versions)
        return out

    def drop_redacted(self, engine: Engine, spec: str, batch_id: int) -> list[str]:
        """Delete, from the cache and the remote, the old objects erasure batch ``batch_id`` redacted.

        Returns:
            Where objects were deleted from (none on a second call).
        """
        gone: list[str] = []
        for r in redactions_of(engine, spec, batch_id):
            gone.extend(self.delete_object(r.old_md5))
        return gone


def open_registry(settings: Settings) -> DatasetRegistry:
    """The data registry named by ``settings`` (reading through its redaction map)."""
    from ativo.store.db import get_engine

    return DatasetRegistry(
        settings.registry_path, settings.dvc_remote, settings.s3_endpoint_url, get_engine(settings.db_url)
    )


@dataclass
class HeldObject:
    """A DVC object holding rows of some subjects: its path in the dataset, their rows, the versions reading it."""

    relpath: str
    rows: int
    versions: list[str]


@dataclass
class ObjectsHeld:
    """What :meth:`DatasetRegistry.holding` found: md5 → object, the subjects with rows, their rows' record ids."""

    objects: dict[str, HeldObject] = field(default_factory=dict)
    found: set[str] = field(default_factory=set)
    ids: set[str] = field(default_factory=set)

    @property
    def versions(self) -> list[str]:
        """The tags of the versions reading one of the objects."""
        return sorted({v for o in self.objects.values() for v in o.versions})


@dataclass(frozen=True)
class RedactedObject:
    """An object :meth:`DatasetRegistry.forget` redacted: its copy's md5, the rows removed, where and who read it."""

    new: str
    rows_removed: int
    relpath: str
    versions: list[str]


@dataclass
class ObjectsRedacted:
    """What :meth:`DatasetRegistry.forget` did: old md5 → its copy; the subjects found and their record ids."""

    objects: dict[str, RedactedObject] = field(default_factory=dict)
    found: set[str] = field(default_factory=set)
    ids: set[str] = field(default_factory=set)

    @property
    def versions(self) -> list[str]:
        """The tags of the versions that read one of the redacted objects."""
        return sorted({v for o in self.objects.values() for v in o.versions})


def _rows_of(data: bytes, subject: str, record_id: str, values: set[str]) -> tuple[int, set[str], set[str]]:
    """Rows of a Parquet object whose ``subject`` is in ``values``: (how many, their subjects, their record ids)."""
    import io

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(data), columns=[subject, record_id])
    hit = pc.is_in(table[subject].cast("string"), value_set=pa.array(sorted(values), "string"))
    hits = table.filter(pc.fill_null(hit, False))
    if not hits.num_rows:
        return 0, set(), set()
    return hits.num_rows, set(hits[subject].cast("string").to_pylist()), set(hits[record_id].cast("string").to_pylist())
