"""A dataset version read for training and for judging a model: every row, lazily on Dask, or a seeded sample.

- :func:`load_dataset`: every row of a version in memory, cached on this host by what the version reads as now
  (parallel trials read it once; after an erasure, its redacted rows);
- :func:`training_data`: the version as the spec's engine trains on it, :class:`TrainingData` (a
  :class:`~ativo.data.split.Split` in memory for ``compute.engine: local``, a lazy
  :class:`~ativo.data.split.DaskSplit` for ``dask``);
- :func:`load_split`: the split in memory for what judges a model (gates, reference profile, model card), and
  :func:`evaluated_on`, what the gate report says it judged.

On Dask the version's Parquet partitions (DVC objects, through the redaction map) become one lazy frame, one
partition per object, read by the workers from where the registry keeps them (the S3 remote, else the local cache):
no process ever holds the dataset. What must hold rows in memory gets a seeded sample of at most
``compute.dask.sample_rows`` rows of each split (:func:`sample_split`), drawn in one pass over the data on the
cluster (:mod:`ativo.compute.cluster`) and cached on this host.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ativo.config import Settings
from ativo.data.split import PARTS, DaskSplit, Split, lazy_split, part_of, split_codes, split_frame
from ativo.spec import ModelSpec

if TYPE_CHECKING:
    import pandas as pd

    from ativo.data.versioning import DatasetVersion

SPLIT_COLUMN = "_ativo_split"


def dataset_cache(settings: Settings, spec_name: str, key: str) -> Path:
    """This host's cache file of a dataset version's rows (or of a sample of them), by what it reads as now.

    ``key`` starts with :meth:`~ativo.data.versioning.DatasetRegistry.read_key` (the version's manifest hash, and a
    suffix once an erasure redacted it), so a redacted version is read afresh and :func:`forget_cached` finds every
    generation of a version's caches.
    """
    return cache_folder(settings, spec_name) / f"{key}.parquet"


def cache_folder(settings: Settings, spec_name: str) -> Path:
    """This host's folder of a spec's dataset caches."""
    return settings.home / "cache" / "datasets" / spec_name


def forget_cached(settings: Settings, spec_name: str, versions: list[DatasetVersion]) -> list[str]:
    """Delete this host's caches of the given dataset versions (an erasure: they hold the rows as they were).

    Every generation of each version's caches goes (its rows and its samples, before and after a redaction); the
    next read caches what the version reads as now. A second call finds nothing.

    Returns:
        The paths deleted.
    """
    out = []
    root = cache_folder(settings, spec_name)
    for v in versions:
        for path in sorted(root.glob(f"{v.manifest_hash.removesuffix('.dir')}*.parquet")):  # any generation
            path.unlink(missing_ok=True)
            out.append(str(path))
    return out


# --- every row, in memory ----------------------------------------------------------------------------------------


def load_dataset(spec: ModelSpec, settings: Settings, tag: str | None) -> tuple[DatasetVersion, pd.DataFrame]:
    """A dataset version and its rows; cached on this host by manifest hash, so parallel trials read it once."""
    import pandas as pd

    from ativo.data.versioning import open_registry
    from ativo.store.db import get_engine

    registry = open_registry(settings)
    version = registry.resolve(get_engine(settings.db_url), spec.name, tag)
    # keyed by what the version reads as now: after an erasure its redacted rows, never a cache of the old ones
    cache = dataset_cache(settings, spec.name, registry.read_key(version))
    if cache.exists():
        return version, pd.read_parquet(cache)
    df = registry.read(version)
    cache.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=cache.parent, suffix=".tmp", delete=False) as tmp:
        df.to_parquet(tmp.name, index=False)
    Path(tmp.name).replace(cache)  # atomic: a reader never sees a half-written cache file
    return version, df


# --- lazily, on Dask ---------------------------------------------------------------------------------------------


def _read_partition(source: tuple[str, dict[str, Any]]) -> pd.DataFrame:
    """One DVC object (a Parquet file) as a frame; run on a worker."""
    import fsspec
    import pyarrow.parquet as pq

    url, options = source
    with fsspec.open(url, "rb", **options) as fh:
        return pq.read_table(fh).to_pandas()


def _parquet_footer(source: tuple[str, dict[str, Any]]) -> tuple[int, Any]:
    import fsspec
    import pyarrow.parquet as pq

    url, options = source
    with fsspec.open(url, "rb", **options) as fh:
        meta = pq.ParquetFile(fh).metadata
        return int(meta.num_rows), meta.schema.to_arrow_schema()


def parquet_frame(sources: list[tuple[str, dict[str, Any]]], label: str = "ativo-parquet") -> tuple[Any, int]:
    """Parquet files as a lazy Dask frame, one partition per file, and their rows (from the footers alone)."""
    from ativo.compute.cluster import require_dask

    require_dask()
    import dask.dataframe as dd

    footers = [_parquet_footer(s) for s in sources]
    meta = footers[0][1].empty_table().to_pandas()
    frame = dd.from_map(_read_partition, sources, meta=meta, label=label, enforce_metadata=False)
    return frame, sum(n for n, _ in footers)


def dataset_frame(spec: ModelSpec, settings: Settings, tag: str | None) -> tuple[DatasetVersion, Any, int]:
    """The dataset version as a lazy Dask frame (one partition per Parquet object), and the rows it reads as now.

    Only the objects' footers are read here (row counts, schema), to check the version's row count.

    Raises:
        DatasetVersionError: no partitions, or a row count that differs from the version's record.
    """
    from ativo.data.versioning import DatasetVersionError, open_registry
    from ativo.store.db import get_engine

    registry = open_registry(settings)
    version = registry.resolve(get_engine(settings.db_url), spec.name, tag)
    with registry.locked(shared=True):
        files = [f for f in registry.resolved(version) if f[0].endswith(".parquet")]
        sources = [registry.object_source(md5) for _, md5, _ in files]
    if not sources:
        raise DatasetVersionError(f"dataset {version.tag} has no partitions")
    frame, rows = parquet_frame(sources, label=f"ativo-{spec.name}-{version.tag}")
    expected = version.rows - sum(n for _, _, n in files)
    if rows != expected:
        raise DatasetVersionError(
            f"dataset {version.tag}: its partitions hold {rows} rows, the version records {expected}"
        )
    return version, frame, rows


def dask_split(spec: ModelSpec, settings: Settings, tag: str | None) -> tuple[DatasetVersion, DaskSplit]:
    """The dataset version's seeded hash split, lazily."""
    version, frame, rows = dataset_frame(spec, settings, tag)
    return version, lazy_split(frame, spec, rows)


# --- a seeded sample of each split, in memory --------------------------------------------------------------------


def _sample_partition(df: pd.DataFrame, spec: ModelSpec, fractions: tuple[float, float, float]) -> pd.DataFrame:
    import numpy as np

    part = part_of(df, spec)
    keep = split_codes(df, spec, salt="sample") < np.asarray(fractions)[part]
    out = df[keep].copy()
    out[SPLIT_COLUMN] = part[keep]
    return out


def _count_partition(df: pd.DataFrame, spec: ModelSpec) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    counts = np.bincount(part_of(df, spec), minlength=3)
    return pd.DataFrame([counts], columns=list(PARTS))


def sample_split(
    spec: ModelSpec, settings: Settings, tag: str | None, read_rows: bool = True
) -> tuple[DatasetVersion, Split | None, dict[str, Any]]:
    """A seeded sample of each split (at most about ``compute.dask.sample_rows`` rows each), in memory.

    Drawn with the rows of each split counted in one pass over the data on the cluster, then cached on this host by
    the version as it reads now (a redacted version is a new key). Returns the version, the sample as a
    :class:`~ativo.data.split.Split` (None with ``read_rows=False``: a cached sample is then not read back) and what
    it is a sample of (:func:`evaluated_on`).
    """
    import pandas as pd

    from ativo.compute.cluster import client_for
    from ativo.data.versioning import open_registry
    from ativo.store.db import get_engine

    n = spec.compute.dask.sample_rows
    registry = open_registry(settings)
    version = registry.resolve(get_engine(settings.db_url), spec.name, tag)
    key = f"{registry.read_key(version)}-sample{n}-seed{spec.split.seed}"
    cache = dataset_cache(settings, spec.name, key)
    info_path = cache.with_suffix(".json")
    if cache.exists() and info_path.exists():
        info = json.loads(info_path.read_text())
        if not read_rows:
            return version, None, info
        frame = pd.read_parquet(cache)
    else:
        version, data, rows = dataset_frame(spec, settings, tag)
        shares = (
            1 - spec.split.test_fraction - spec.split.validation_fraction,
            spec.split.validation_fraction,
            spec.split.test_fraction,
        )
        # a little over n expected per split, then cut to n exactly by the sample hash: bounded and seeded
        fractions = tuple(min(1.0, 1.1 * n / max(1.0, rows * s)) for s in shares)
        meta = data._meta.assign(**{SPLIT_COLUMN: pd.Series(dtype="int8")})
        sampled = data.map_partitions(_sample_partition, spec, fractions, meta=meta)
        counted = data.map_partitions(
            _count_partition, spec, meta=pd.DataFrame({p: pd.Series(dtype="int64") for p in PARTS})
        )
        frame, counts = client_for(spec, settings).compute([sampled, counted], sync=True)
        frame = frame.reset_index(drop=True)
        frame["_order"] = split_codes(frame, spec, salt="sample")
        frame = (
            frame.sort_values([SPLIT_COLUMN, "_order"], kind="stable")
            .groupby(SPLIT_COLUMN)
            .head(n)
            .drop(columns="_order")
            .reset_index(drop=True)
        )
        totals = {p: int(counts[p].sum()) for p in PARTS}
        sizes = {p: int((frame[SPLIT_COLUMN] == i).sum()) for i, p in enumerate(PARTS)}
        info = {
            "engine": "dask",
            "seed": spec.split.seed,
            "sample_rows": n,
            "rows": sizes,
            "of": totals,
            "dataset_version": version.tag,
        }
        cache.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=cache.parent, suffix=".tmp", delete=False) as tmp:
            frame.to_parquet(tmp.name, index=False)
        Path(tmp.name).replace(cache)
        info_path.write_text(json.dumps(info))
    parts = [frame[frame[SPLIT_COLUMN] == i].drop(columns=SPLIT_COLUMN).reset_index(drop=True) for i in range(3)]
    return version, Split(train=parts[0], valid=parts[1], test=parts[2]), info


# --- what training and the gates read ----------------------------------------------------------------------------


@dataclass
class TrainingData:
    """A dataset version ready to train on: its split in memory (``compute.engine: local``) or lazy on the cluster.

    Training on it is :func:`ativo.train.engine.fit_on`.
    """

    version: DatasetVersion
    rows: int
    split: Split | None = None
    lazy: DaskSplit | None = None

    def signature_rows(self, n: int = 200) -> pd.DataFrame:
        """The first ``n`` validation rows (a model's signature sample)."""
        if self.split is not None:
            return self.split.valid.head(n)
        assert self.lazy is not None
        return _head(self.lazy.valid, n)


def _head(frame: Any, n: int) -> pd.DataFrame:
    """The first ``n`` rows of a lazy frame, reading partitions until it has them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "insufficient elements": read on, below
        for k in (1, 4, -1):
            rows = frame.head(n, npartitions=k if k > 0 else -1)
            if len(rows) >= n or k == -1 or k >= frame.npartitions:
                return rows
    return rows


def training_data(spec: ModelSpec, settings: Settings, tag: str | None) -> TrainingData:
    """The dataset version to train on, as the spec's engine reads it (every row in memory, or lazily on Dask).

    Raises:
        ValueError: too few rows to split (e.g. what an erasure left); the message names the rows.
    """
    if spec.compute.engine == "dask":
        version, lazy = dask_split(spec, settings, tag)
        return TrainingData(version=version, rows=lazy.rows, lazy=lazy)
    version, df = load_dataset(spec, settings, tag)
    try:
        split = split_frame(df, spec)
    except ValueError as err:  # too few rows to split (e.g. what an erasure left)
        raise ValueError(f"{len(df)} rows: {err}") from err
    return TrainingData(version=version, rows=len(df), split=split)


def load_split(spec: ModelSpec, settings: Settings, tag: str | None) -> tuple[DatasetVersion, Split, dict[str, Any]]:
    """The seeded split of a dataset version in memory, for what judges a model (gates, profile, card).

    ``compute.engine: local``: every row (:func:`~ativo.data.split.split_frame`); ``dask``: a seeded sample of
    each split of at most ``compute.dask.sample_rows`` rows (:func:`sample_split`). The third value says which:
    ``{"engine", "sample", ...}``, with the sample's and the splits' row counts.
    """
    if spec.compute.engine == "dask":
        version, sample, info = sample_split(spec, settings, tag)
        assert sample is not None
        return version, sample, {**info, "sample": True}
    version, df = load_dataset(spec, settings, tag)
    split = split_frame(df, spec)
    rows = {"train": len(split.train), "valid": len(split.valid), "test": len(split.test)}
    return (
        version,
        split,
        {"engine": "local", "sample": False, "rows": rows, "of": rows, "dataset_version": version.tag},
    )


def evaluated_on(spec: ModelSpec, settings: Settings, tag: str) -> dict[str, Any]:
    """What the gates of a version trained on ``tag`` judged: every row, or (dask) the seeded sample's counts."""
    if spec.compute.engine != "dask":
        return {"engine": spec.compute.engine, "sample": False, "dataset_version": tag}
    _, _, info = sample_split(spec, settings, tag, read_rows=False)
    return {**info, "sample": True}
