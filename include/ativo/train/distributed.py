"""Training beyond one machine: ``compute.engine: dask`` trains with ``xgboost.dask`` on a ``dask.distributed`` cluster.

The dataset version's Parquet partitions (DVC objects, through the redaction map) become one lazy Dask frame, one
partition per object, read by the workers from where the registry keeps them (the S3 remote, else the local
cache): no process ever holds the dataset. The split is a seeded hash of the record id, so every worker, every
trial and every later version of the same rows agree on which row is in which split without seeing the others
(not stratified: at the sizes this engine is for, each split's label rate is the dataset's within noise).

What must hold rows in memory (the gates, the reference profile, the model card, the MLflow dataset input) gets
a seeded sample of at most ``compute.dask.sample_rows`` rows of each split, drawn in one pass over the data and
cached on this host; the gate report says how many rows of how many it judged (:func:`evaluated_on`).

The cluster is the scheduler at ``ATIVO_DASK_SCHEDULER`` when set, else a ``LocalCluster`` of the spec's
``compute.dask`` shape, started once per process and closed when the process ends.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ativo.config import Settings
from ativo.data.features import LABEL
from ativo.errors import AtivoError
from ativo.spec import ModelSpec
from ativo.train.trainer import Split, TrainedModel, metrics_for

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from ativo.data.versioning import DatasetVersion

log = logging.getLogger(__name__)

PARTS = ("train", "valid", "test")
SPLIT_COLUMN = "_ativo_split"


class DaskTrainingError(AtivoError):
    """The cluster could not be reached or the data could not be read for distributed training."""


# --- the cluster -------------------------------------------------------------------------------------------------

WORKER_WAIT_S = 120.0
"""How long training waits for a standing scheduler's first worker before it fails saying so."""

_CLIENTS: dict[str, Any] = {}
_CLUSTERS: dict[str, Any] = {}  # the LocalCluster each local client runs on
_LOCK = threading.Lock()


def client_for(spec: ModelSpec, settings: Settings) -> Any:
    """A ``distributed.Client`` on the settings' scheduler, else on this process's ``LocalCluster`` (started once).

    Raises:
        DaskTrainingError: the scheduler named by ``ATIVO_DASK_SCHEDULER`` does not answer.
    """
    from distributed import Client, LocalCluster

    shape = spec.compute.dask
    key = settings.dask_scheduler or f"local:{shape.workers}x{shape.threads_per_worker}:{shape.memory_limit}"
    with _LOCK:
        client = _CLIENTS.get(key)
        if client is not None and client.status == "running":
            return client
        if settings.dask_scheduler:
            try:
                client = Client(settings.dask_scheduler, timeout="30s", set_as_default=False)
            except OSError as err:
                raise DaskTrainingError(
                    f"compute.engine dask: the scheduler ATIVO_DASK_SCHEDULER="
                    f"{settings.dask_scheduler} does not answer: {err}"
                ) from None
            try:
                client.wait_for_workers(1, timeout=WORKER_WAIT_S)
            except TimeoutError:
                client.close()
                raise DaskTrainingError(
                    f"compute.engine dask: the scheduler {settings.dask_scheduler} has had no "
                    f"worker for {WORKER_WAIT_S:.0f} s; start `dask worker "
                    f"{settings.dask_scheduler}` on a host that reads the DVC remote"
                ) from None
        else:
            local_dir = settings.home / "dask"
            local_dir.mkdir(parents=True, exist_ok=True)
            cluster = LocalCluster(
                n_workers=shape.workers,
                threads_per_worker=shape.threads_per_worker,
                memory_limit=shape.memory_limit,
                processes=True,
                dashboard_address=None,
                worker_dashboard_address=None,
                local_directory=str(local_dir),
                silence_logs=logging.WARNING,
            )
            client = Client(cluster, set_as_default=False)
            _CLUSTERS[key] = cluster
            log.info(
                "dask: started a LocalCluster of %d worker(s) x %d thread(s), %s each",
                shape.workers,
                shape.threads_per_worker,
                shape.memory_limit,
            )
        _CLIENTS[key] = client
        return client


def close_clients() -> None:
    """Close every client (and the LocalCluster it started) of this process."""
    with _LOCK:
        for key, client in _CLIENTS.items():
            client.close()
            if key in _CLUSTERS:
                _CLUSTERS.pop(key).close()
        _CLIENTS.clear()


atexit.register(close_clients)


# --- the data, lazily --------------------------------------------------------------------------------------------


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


def split_codes(df: pd.DataFrame, spec: ModelSpec, salt: str = "split") -> np.ndarray:
    """A uniform number in [0, 1) per row from its record id and the spec's split seed (and ``salt``)."""
    import numpy as np
    import pandas as pd

    key = hashlib.sha256(f"{salt}:{spec.split.seed}".encode()).hexdigest()[:16]
    hashed = pd.util.hash_pandas_object(df[spec.data_schema.record_id].astype(str), index=False, hash_key=key)
    return (hashed.to_numpy() >> np.uint64(11)).astype("float64") / float(1 << 53)


def part_of(df: pd.DataFrame, spec: ModelSpec) -> np.ndarray:
    """0 (train), 1 (validation) or 2 (test) per row: test below ``test_fraction``, validation next."""
    import numpy as np

    u = split_codes(df, spec)
    test, valid = spec.split.test_fraction, spec.split.validation_fraction
    return np.where(u < test, 2, np.where(u < test + valid, 1, 0)).astype("int8")


def _select(df: pd.DataFrame, spec: ModelSpec, part: int) -> pd.DataFrame:
    return df[part_of(df, spec) == part]


@dataclass
class DaskSplit:
    """Train / validation / test as lazy Dask frames of the same dataset version."""

    train: Any
    valid: Any
    test: Any
    rows: int  # the rows the dataset version reads as now (all splits; an erasure's are gone)


def dask_split(spec: ModelSpec, settings: Settings, tag: str | None) -> tuple[DatasetVersion, DaskSplit]:
    """The dataset version's seeded hash split, lazily."""
    version, frame, rows = dataset_frame(spec, settings, tag)
    return version, lazy_split(frame, spec, rows)


def lazy_split(frame: Any, spec: ModelSpec, rows: int) -> DaskSplit:
    """A lazy feature frame's seeded hash split (:func:`part_of`), each split a filter of every partition."""
    parts = [frame.map_partitions(_select, spec, i, meta=frame._meta) for i in range(3)]
    return DaskSplit(train=parts[0], valid=parts[1], test=parts[2], rows=rows)


def parquet_frame(sources: list[tuple[str, dict[str, Any]]], label: str = "ativo-parquet") -> tuple[Any, int]:
    """Parquet files as a lazy Dask frame, one partition per file, and their rows (from the footers alone)."""
    import dask.dataframe as dd

    footers = [_parquet_footer(s) for s in sources]
    meta = footers[0][1].empty_table().to_pandas()
    frame = dd.from_map(_read_partition, sources, meta=meta, label=label, enforce_metadata=False)
    return frame, sum(n for n, _ in footers)


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
    :class:`~ativo.train.trainer.Split` (None with ``read_rows=False``: a cached sample is then not read back) and what
    it is a sample of (:func:`evaluated_on`).
    """
    import pandas as pd

    from ativo.data.versioning import open_registry
    from ativo.store.db import get_engine

    n = spec.compute.dask.sample_rows
    registry = open_registry(settings)
    version = registry.resolve(get_engine(settings.db_url), spec.name, tag)
    key = f"{registry.read_key(version)}-sample{n}-seed{spec.split.seed}"
    cache = settings.home / "cache" / "datasets" / spec.name / f"{key}.parquet"
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


def evaluated_on(spec: ModelSpec, settings: Settings, tag: str) -> dict[str, Any]:
    """What the gates of a version trained on ``tag`` judged: every row, or (dask) the seeded sample's counts."""
    if spec.compute.engine != "dask":
        return {"engine": spec.compute.engine, "sample": False, "dataset_version": tag}
    _, _, info = sample_split(spec, settings, tag, read_rows=False)
    return {**info, "sample": True}


# --- training ----------------------------------------------------------------------------------------------------


def _design(df: pd.DataFrame, spec: ModelSpec) -> pd.DataFrame:
    from ativo.model.encoding import design_matrix

    return design_matrix(df, spec)


def _labels(df: pd.DataFrame) -> pd.Series:
    return df[LABEL].astype("float32")


def _inputs(spec: ModelSpec, frame: Any) -> tuple[Any, Any]:
    """A lazy split as the booster's inputs and labels (the same encoding as every other path)."""
    import pandas as pd

    features = frame.map_partitions(_design, spec, meta=_design(frame._meta, spec))
    labels = frame.map_partitions(_labels, meta=pd.Series(dtype="float32", name=LABEL))
    return features, labels


def fit_dask(
    spec: ModelSpec,
    settings: Settings,
    split: DaskSplit,
    device: str = "cpu",
    overrides: dict[str, Any] | None = None,
) -> TrainedModel:
    """Train with ``xgboost.dask`` on the cluster, early-stopping on the validation split; score both held-out splits.

    Only the held-out splits' labels and scores (two numbers a row) come back to this process for the metrics.
    The booster is an ordinary one: registry, gates and serving read it as any other.
    """
    client = client_for(spec, settings)
    params: dict[str, Any] = {"objective": spec.model.objective, "eval_metric": ["logloss", "auc"]}
    params.update(spec.model.params)
    params.update(overrides or {})
    params.pop("nthread", None)  # each worker uses its own threads
    params["device"] = device
    with client.as_current():  # xgboost.dask looks the client up as the current one
        return _fit(client, spec, split, params)


def _fit(client: Any, spec: ModelSpec, split: DaskSplit, params: dict[str, Any]) -> TrainedModel:
    import numpy as np
    from xgboost import dask as dxgb

    xtrain, ytrain = _inputs(spec, split.train)
    xvalid, yvalid = _inputs(spec, split.valid)
    xtest, ytest = _inputs(spec, split.test)
    dtrain = dxgb.DaskQuantileDMatrix(client, xtrain, ytrain, enable_categorical=True)
    dvalid = dxgb.DaskQuantileDMatrix(client, xvalid, yvalid, enable_categorical=True, ref=dtrain)
    out = dxgb.train(
        client,
        params,
        dtrain,
        num_boost_round=spec.model.num_boost_round,
        evals=[(dvalid, "valid")],
        early_stopping_rounds=spec.model.early_stopping_rounds,
        verbose_eval=False,
    )
    booster = out["booster"]
    curve = [float(v) for v in out["history"]["valid"]["auc"]]
    best = int(getattr(booster, "best_iteration", len(curve) - 1))
    pv, pt = dxgb.predict(client, booster, xvalid), dxgb.predict(client, booster, xtest)
    yv, pv, yt, pt = client.compute([yvalid, pv, ytest, pt], sync=True)
    metrics: dict[str, float] = {"best_iteration": float(best)}
    metrics.update(metrics_for(np.asarray(yv), np.asarray(pv), "valid"))
    metrics.update(metrics_for(np.asarray(yt), np.asarray(pt), "test"))
    return TrainedModel(booster=booster, params=params, best_iteration=best, metrics=metrics, curve=curve)
